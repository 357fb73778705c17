package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
)

// Exit statuses.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitNotFound = 3
)

// command is one subcommand: its name, its synopsis and help, and the
// function that runs it.
type command struct {
	name     string
	synopsis string // the arguments after the name, for usage lines
	summary  string // one line for the overview
	help     string // what --help prints after the usage line
	run      func(ctx context.Context, c *cli, args []string) error
}

// commands is every subcommand, in the order the overview lists them.
var commands = []*command{
	keygenCommand,
	migrateCommand,
	setCommand,
	getCommand,
	deleteCommand,
	listCommand,
	importCommand,
	rotateCommand,
	verifyCommand,
}

// cli is one run of the command: its standard streams and the subcommand
// being run.
type cli struct {
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
	stdinTTY  bool // standard input is a terminal
	stderrTTY bool // standard error is a terminal: draw a progress bar
	cmd       *command

	// flagErr is the error, with its hint, of a flag.Func that refused its
	// value; the flag package keeps only the text.
	flagErr error
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, a second one ends the process at once.
		<-ctx.Done()
		stop()
	}()

	c := &cli{
		stdin:     os.Stdin,
		stdout:    os.Stdout,
		stderr:    os.Stderr,
		stdinTTY:  isTerminal(os.Stdin),
		stderrTTY: isTerminal(os.Stderr),
	}
	code := c.dispatch(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// dispatch runs the subcommand that args name and returns the exit status.
func (c *cli) dispatch(ctx context.Context, args []string) int {
	if len(args) == 0 {
		c.overview(c.stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		return c.helpCommand(ctx, rest)
	}

	cmd := lookup(name)
	if cmd == nil {
		msg := fmt.Sprintf("unknown command %q", name)
		if strings.HasPrefix(name, "-") {
			msg = fmt.Sprintf("unknown flag %q before the command", flagName(name))
		}
		return c.fail(usageError(msg, "run 'sqlsecrets help' for the list of commands"))
	}
	c.cmd = cmd
	err := cmd.run(ctx, c, rest)
	if errors.Is(err, errHelpShown) {
		return exitOK
	}
	return c.fail(err)
}

// helpCommand prints the overview, or the help of the command that args
// name.
func (c *cli) helpCommand(ctx context.Context, args []string) int {
	switch {
	case len(args) == 0:
		c.overview(c.stdout)
		return exitOK
	case len(args) > 1:
		return c.fail(usageError("help takes at most one command",
			"run 'sqlsecrets help COMMAND'"))
	}
	cmd := lookup(args[0])
	if cmd == nil {
		return c.fail(usageError(fmt.Sprintf("unknown command %q", args[0]),
			"run 'sqlsecrets help' for the list of commands"))
	}
	// The flags are defined where the command runs: let it print its help.
	return c.dispatch(ctx, []string{cmd.name, "--help"})
}

func lookup(name string) *command {
	for _, cmd := range commands {
		if cmd.name == name {
			return cmd
		}
	}
	return nil
}

// overview prints what the command does, its subcommands and the
// environment it reads.
func (c *cli) overview(w io.Writer) {
	fmt.Fprint(w, `sqlsecrets keeps application secrets encrypted in PostgreSQL.

usage: sqlsecrets COMMAND [FLAGS] [ARGS]

commands:
`)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	for _, cmd := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", cmd.name, cmd.summary)
	}
	tw.Flush()
	fmt.Fprint(w, `
environment:
`+envHelp+`
exit status:
`+exitHelp+`
Run 'sqlsecrets COMMAND --help' for the flags and arguments of one command.
`)
}

// envHelp and exitHelp end the overview and every command's help.
const envHelp = `  DATABASE_URL           PostgreSQL connection URL (every command but keygen)
  SECRETS_KEY            current master key, as 'sqlsecrets keygen' prints it
                         (set, get, import, rotate, verify)
  SECRETS_PREVIOUS_KEYS  older keys, comma-separated, that can still decrypt
  Keys are read from the environment only, never from flags.
`

const exitHelp = `  0 success, 1 failure, 3 not found,
  2 usage: bad command, flag, argument or JSON value, or a missing or
    invalid DATABASE_URL, SECRETS_KEY or SECRETS_PREVIOUS_KEYS
`

// errHelpShown is returned by parse when --help printed the usage: the
// run ends with exit status 0.
var errHelpShown = errors.New("help shown")

// flagSet returns an empty flag set for the current command. It prints
// nothing itself: parse reports errors in our own format, and prints the
// help for --help.
func (c *cli) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet(c.cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// commandHelp prints the usage line, the help text and the flags of the
// current command.
func (c *cli) commandHelp(w io.Writer, fs *flag.FlagSet) {
	cmd := c.cmd
	usage := strings.TrimSpace("sqlsecrets " + cmd.name + " " + cmd.synopsis)
	fmt.Fprintf(w, "usage: %s\n\n%s", usage, cmd.help)
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprint(w, "\nflags:\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fs.VisitAll(func(f *flag.Flag) {
			arg, usage := flag.UnquoteUsage(f)
			if arg != "" {
				arg = " " + arg
			}
			if d := f.DefValue; d != "" && d != "false" && d != "0" {
				usage += fmt.Sprintf(" (default %s)", d)
			}
			fmt.Fprintf(tw, "  --%s%s\t%s\n", f.Name, arg, usage)
		})
		tw.Flush()
	}
	fmt.Fprint(w, "\nenvironment:\n"+envHelp+"\nexit status:\n"+exitHelp)
}

// parse parses the flags in args and returns the positional arguments.
// Flags go before positional arguments, as with every Go command; a
// flag-like argument after the first positional one is a usage error that
// says so. what names the first positional argument ("KEY", "FILE").
func (c *cli) parse(fs *flag.FlagSet, args []string, what string) ([]string, error) {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		c.commandHelp(c.stdout, fs)
		return nil, errHelpShown
	}
	if err != nil && c.flagErr != nil {
		return nil, c.flagErr // a flag value that a flag.Func refused, with its hint
	}
	if err != nil {
		msg := err.Error()
		if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
			msg = fmt.Sprintf("unknown flag %q", "--"+name)
		}
		if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
			msg = fmt.Sprintf("flag %q needs a value", "--"+name)
		}
		return nil, usageError(msg, c.helpHint())
	}

	rest := fs.Args()
	if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
		return rest, nil // "--" ends the flags: what follows is positional
	}
	for _, a := range rest[min(1, len(rest)):] {
		if looksLikeFlag(a) {
			if what == "" {
				what = "the arguments"
			}
			return nil, usageError(fmt.Sprintf("flag %q after %s", flagName(a), what),
				fmt.Sprintf("flags go before %s: sqlsecrets %s %s; for a value that "+
					"starts with '-', put -- before %s", what, c.cmd.name, c.cmd.synopsis, what))
		}
	}
	return rest, nil
}

// helpHint points at the current command's help.
func (c *cli) helpHint() string {
	return fmt.Sprintf("run 'sqlsecrets %s --help' for usage", c.cmd.name)
}

// looksLikeFlag reports whether a looks like a flag rather than a value:
// "-x" or "--x", but not "-", "-1" or "-0.5".
func looksLikeFlag(a string) bool {
	if len(a) < 2 || a[0] != '-' {
		return false
	}
	return a[1] < '0' || a[1] > '9'
}

// flagName returns the flag part of a, without any "=value", so that a
// message can name the flag without repeating a value.
func flagName(a string) string {
	name, _, _ := strings.Cut(a, "=")
	return name
}

// noArgs refuses positional arguments for a command that takes none. It
// does not repeat them: one could be a value typed in the wrong place.
func (c *cli) noArgs(rest []string) error {
	if len(rest) > 0 {
		return usageError(fmt.Sprintf("%s takes no arguments, got %d", c.cmd.name, len(rest)),
			c.helpHint())
	}
	return nil
}
