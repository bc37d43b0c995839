// A 512 × 32-bit weight ROM read every cycle, four 8 × 4-bit signed products of its lanes and
// one 9 × 9-bit product: fixture for block RAM inference and the logic/DSP split of products.
module rom_mac (
  input  wire clk_i,
  input  wire [8:0] addr_i,
  input  wire [31:0] x_i,
  input  wire [17:0] y_i,
  output reg  [13:0] sum_o,
  output reg  [17:0] prod_o
);
  reg [31:0] mem [0:511];
  reg [31:0] w_q;
  initial $readmemh("rom_mac.mem", mem);
  always @(posedge clk_i) w_q <= mem[addr_i];
  integer i;
  reg [13:0] s;
  always @(*) begin
    s = 14'd0;
    for (i = 0; i < 4; i = i + 1) s = s + {{2{1'b0}}, $signed(x_i[i * 8 +: 8]) * $signed(w_q[i * 4 +: 4])};
  end
  always @(posedge clk_i) begin
    sum_o <= s;
    prod_o <= $signed(y_i[17:9]) * $signed(y_i[8:0]);
  end
endmodule
