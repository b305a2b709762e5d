"""Evaluating SMFD fairly: the benchmark (methods, metric suite, reports), FID, reference archs for timing,
classical baselines, speed benchmarks, cross-validation, ablations and the demo."""
