// The estimator's built-in calibration: the fits of `qforge estimate --calibrate` over
// synthesized designs. Empty until such a calibration is committed; until then
// `qforge estimate` asks for --model (a file that --calibrate writes).
let builtInFits: [ResourceModel.Fit] = []
