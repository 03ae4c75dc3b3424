// Package flagenv is the commands' one convention for configuration: every
// flag can also be set from an environment variable PREFIX_FLAG_NAME (flags
// win), and --help names that variable beside each flag.
package flagenv

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/peterbourgon/ff/v3"
)

// EnvName is the environment variable that sets flag name.
func EnvName(prefix, name string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Parse installs a usage text that starts with intro and lists every flag
// with its variable, then parses the environment and args into fs.
func Parse(fs *flag.FlagSet, args []string, prefix, intro string) error {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: %s [flags]\n\n%s\nEvery flag can also come from the environment variable named beside it.\n\n", fs.Name(), intro)
		fs.VisitAll(func(f *flag.Flag) {
			name, help := flag.UnquoteUsage(f)
			fmt.Fprintf(w, "  --%s %s   (%s)\n    \t%s", f.Name, name, EnvName(prefix, f.Name), help)
			if f.DefValue != "" {
				fmt.Fprintf(w, " (default %q)", f.DefValue)
			}
			fmt.Fprintln(w)
		})
	}
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix(prefix)); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return nil
}

// Exit ends a command with run's error: status 0 for none or for --help,
// else the error on stderr and status 1.
func Exit(name string, err error) {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	os.Exit(1)
}
