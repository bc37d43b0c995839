module mac4 (
  input  wire clk_i,
  input  wire rst_ni,
  input  wire valid_i,
  input  wire signed [3:0] a_i,
  input  wire signed [3:0] b_i,
  output wire signed [7:0] last_o
);
  reg signed [7:0] acc_q;
  reg signed [7:0] acc_d;
  always @(*) begin
    acc_d = acc_q;
    if (valid_i) acc_d = acc_q + a_i * b_i;
  end
  always @(posedge clk_i) begin
    if (!rst_ni) acc_q <= 8'sd0;
    else acc_q <= acc_d;
  end
  assign last_o = acc_q;
endmodule
