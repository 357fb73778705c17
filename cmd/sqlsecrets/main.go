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
	if cmd == nil && strings.HasPrefix(name, "-") {
		return c.fail(usageError("argument 1 is a flag, but the command comes first",
			"sqlsecrets COMMAND [FLAGS] [ARGS]; "+commandsHint()))
	}
	if cmd == nil {
		return c.fail(unknownCommand(1))
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
		return c.fail(unknownCommand(2))
	}
	// The flags are defined where the command runs: let it print its help.
	return c.dispatch(ctx, []string{cmd.name, "--help"})
}

// unknownCommand is the error for argument n, which names no command. It
// does not repeat the argument: it could be a value typed in the wrong
// place.
func unknownCommand(n int) error {
	return usageError(fmt.Sprintf("unknown command: argument %d is not a command of sqlsecrets", n),
		commandsHint())
}

// commandsHint lists the commands.
func commandsHint() string {
	names := make([]string, len(commands))
	for i, cmd := range commands {
		names[i] = cmd.name
	}
	return "the commands are " + strings.Join(names, ", ") +
		"; run 'sqlsecrets help' for what each one does"
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
  SECRETS_READ_LEGACY    true to open values in the PHP original's format too,
                         only while adopting such a table
  Keys are read from the environment only, never from flags.
`

const exitHelp = `  0 success, 1 failure, 3 not found,
  2 usage: bad command, flag, argument or JSON value, or a missing or
    invalid DATABASE_URL, SECRETS_KEY or SECRETS_PREVIOUS_KEYS
`

// errHelpShown is returned by parse when --help printed the usage: the
// run ends with exit status 0.
var errHelpShown = errors.New("help shown")

// flagSet returns an empty flag set for the current command. It only
// holds the flags: parse reads the arguments itself, reports errors in
// our own words, and prints the help for --help.
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
