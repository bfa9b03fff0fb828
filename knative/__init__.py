"""The control side of knflow: the pipeline spec, the embedded serving runtime (revisions,
traffic, router, KPA autoscaler, scale to zero), manifest rendering, cluster apply, and the
kn-style CLI. Nothing outside the CLI and runtime entry points imports this package."""
