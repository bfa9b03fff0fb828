"""Builder functions: content-addressed build contexts for new inference images, build backends
(an unprivileged Kaniko Job in a cluster, a local revision bundle on one machine) and the canary
rollout of the serving service to the new revision."""
