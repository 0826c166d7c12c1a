// Package deploy holds the deployable artefacts (compose file, production
// configuration, systemd unit, Grafana dashboard, Prometheus alert rules)
// and the tests that keep them working: the compose topology run on
// loopback from this module's binaries, and every dashboard and alert
// expression checked against the metrics a bridge exports.
package deploy
