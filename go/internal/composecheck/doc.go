// Package composecheck is test code only (`go test ./go/internal/composecheck/`):
// it checks docker-compose.yml against the repository and the contract,
// without a Docker engine or the network. Nothing imports it; this file is
// its only non-test file.
//
// It loads the compose file with compose-go (interpolation from a given
// environment, never the process's) and reports, in one pass:
//
//   - every build context and Dockerfile exists;
//   - every service on the Go image (docker/go.Dockerfile) runs a real
//     detailpage subcommand, never `broker` or `up` (compose has Apache Kafka
//     and runs each service itself) nor `nginx` (the Go image has no nginx);
//   - every service on the OpenResty image (docker/openresty.Dockerfile) runs
//     the `nginx` subcommand from the image's ENTRYPOINT, with a valid --tier
//     and --name, and bind-mounts exactly the repository's lua/, nginx/ and
//     templates/ read-only under its --root;
//   - services listen on 0.0.0.0 at the port they publish, and every address
//     flag (--kafka, --redis, --source, --replica, --direct, --apps) names a
//     service that the referring service depends on;
//   - no two services publish the same host port, and each publishes exactly
//     the contract's host port (ContractPorts).
//
// CheckFlags adds the one check that needs the binary: every flag given in
// the compose file is one the subcommand defines, as listed by
// `detailpage <command> --help` (UsageFlags parses that text).
package composecheck
