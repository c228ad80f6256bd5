// Command ipfs is Kubo's own command entry point, built from the Kubo module pinned in go.mod.
package main

import (
	"os"

	"github.com/ipfs/kubo/cmd/ipfs/kubo"
)

func main() {
	os.Exit(kubo.Start(kubo.BuildDefaultEnv))
}
