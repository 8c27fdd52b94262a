// Command timebox is the Timebox server, its CLI and its local dev instance in one binary.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/timebox-dev/timebox"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) { // the program we ran (psql) already told the user why
		return ee.code
	}
	fmt.Fprintln(stderr, "error: "+errorText(err))
	return exitCode(err)
}

// newRootCommand builds the whole command tree.
func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "timebox",
		Short:         "Just-in-time, time-boxed access to databases",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServerCommand(), newDevCommand(), newConfigCommand(), newAdminCommand(), newDoctorCommand())
	root.AddCommand(clientCommands()...)
	return root
}

// usageError marks a mistake on the command line (exit code 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// errorText is what a person sees for err: the message of a *timebox.Error (never a driver
// string), or the text of a usage or flag error.
func errorText(err error) string {
	var ue *usageError
	var te *timebox.Error
	switch {
	case errors.As(err, &ue):
		return ue.msg
	case errors.As(err, &te):
		return te.Message
	}
	return err.Error()
}

// exitCode maps an error to the process exit code; the one place that does.
func exitCode(err error) int {
	var ue *usageError
	var te *timebox.Error
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	} else if errors.As(err, &ue) || !errors.As(err, &te) {
		return 2 // usage errors, and cobra's own flag errors
	}
	switch te.Code {
	case timebox.EINVALID:
		return 3
	case timebox.EUNAUTHORIZED, timebox.EFORBIDDEN:
		return 4
	case timebox.ENOTFOUND:
		return 5
	case timebox.ECONFLICT:
		return 6
	case timebox.EUNAVAILABLE:
		return 7
	}
	return 1
}
