// eg-luavalidate runs Envoy Gateway's own Lua validation (internal/gatewayapi/luavalidator, strict mode:
// the script run in gopher-lua with Envoy Gateway's mocks of Envoy's stream API and its sandbox) on the
// Lua files named on the command line. Exit 0 when every file passes, 1 with the validator's error.
package main

import (
	"fmt"
	"os"

	"github.com/envoyproxy/gateway/internal/gatewayapi/luavalidator"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: eg-luavalidate FILE.lua...")
		os.Exit(2)
	}
	failed := false
	for _, path := range os.Args[1:] {
		code, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if err := luavalidator.NewLuaValidator(string(code), nil).Validate(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}
