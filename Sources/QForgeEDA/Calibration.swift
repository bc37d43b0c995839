// The estimator's built-in calibration. Made by /work-style runs of `qforge estimate --calibrate`
// over synthesized designs; filled in below.
let builtInFits: [ResourceModel.Fit] = []
