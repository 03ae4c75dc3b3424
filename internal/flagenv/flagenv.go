// Package flagenv is the commands' one convention for configuration: every
// flag can also be set from an environment variable PREFIX_FLAG_NAME and
// from a config file (--config FILE, one "name value" line per flag, the
// same names as the flags); flags win over the environment, which wins over
// the file. --help names the variable beside each flag, and --version
// prints the build.
package flagenv

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/peterbourgon/ff/v3"
	"github.com/pixelrelay/relay/internal/buildinfo"
)

// EnvName is the environment variable that sets flag name.
func EnvName(prefix, name string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// ErrVersion is Parse's answer to --version, after it printed the build on
// standard output: the command ends, successfully.
var ErrVersion = errors.New("flagenv: --version")

// Parse adds --config and --version to fs, installs a usage text that starts
// with intro and lists every flag with its variable, then parses the
// config file, the environment and args into fs.
func Parse(fs *flag.FlagSet, args []string, prefix, intro string) error {
	fs.String("config", "", "`file` of settings, one per line: a flag's name, a space, its value (\"max-body 1024\"); # starts a comment")
	version := fs.Bool("version", false, "print the build (module version, VCS revision, Go) and exit")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: %s [flags]\n\n%s\nEvery flag can also come from the environment variable named beside it, or from --config.\n\n", fs.Name(), intro)
		fs.VisitAll(func(f *flag.Flag) {
			name, help := flag.UnquoteUsage(f)
			fmt.Fprintf(w, "  --%s %s   (%s)\n    \t%s", f.Name, name, EnvName(prefix, f.Name), help)
			if f.DefValue != "" && f.DefValue != "false" {
				fmt.Fprintf(w, " (default %q)", f.DefValue)
			}
			fmt.Fprintln(w)
		})
	}
	err := ff.Parse(fs, args,
		ff.WithEnvVarPrefix(prefix),
		ff.WithConfigFileFlag("config"),
		ff.WithConfigFileParser(ff.PlainParser),
	)
	if err != nil {
		return err
	}
	if *version {
		fmt.Fprintln(os.Stdout, fs.Name(), buildinfo.Read())
		return ErrVersion
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return nil
}

// Exit ends a command with run's error: status 0 for none, --help or
// --version, else the error on stderr and status 1.
func Exit(name string, err error) {
	if err == nil || errors.Is(err, flag.ErrHelp) || errors.Is(err, ErrVersion) {
		os.Exit(0)
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	os.Exit(1)
}
