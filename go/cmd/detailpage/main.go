// Command detailpage is every detailpage service in one binary: one
// subcommand per service (see `detailpage help`).
package main

import (
	"os"

	"github.com/detailpage/detailpage/go/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
