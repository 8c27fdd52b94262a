package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// notifyListLimit is how many deliveries notify failed and notify list show by default.
const notifyListLimit = 100

// newNotifyCommand returns `timebox notify failed|retry|list`: the notification outbox as
// admins and auditors see it, and the admins' replay of a failed delivery.
func newNotifyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "notify",
		Short: "See notification deliveries and replay failed ones (admins; auditors read)",
		Long: "Shows the notification outbox: each message to Slack, Teams, e-mail or a webhook and\n" +
			"where it stands. A delivery that failed for good (its retries ran out, or the receiver\n" +
			"refused it) is on the dead-letter list, timebox notify failed, until an admin puts it\n" +
			"back with timebox notify retry ID. Admins and auditors list; admins retry.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("name a subcommand: timebox notify failed, timebox notify retry ID or timebox notify list")
		},
	}
	cmd.AddCommand(newNotifyFailedCommand(), newNotifyRetryCommand(), newNotifyListCommand())
	return cmd
}

func newNotifyFailedCommand() *cobra.Command {
	var f timebox.DeliveryFilter
	cmd := &cobra.Command{
		Use:   "failed [--channel NAME] [--limit N]",
		Short: "List the dead-letter list: the notifications given up, newest first",
		Long: "Lists the notifications given up, newest first: ID, channel, kind, request, recipient,\n" +
			"attempts, last error (cut; -o json has it whole) and when it was created. Replay one\n" +
			"with timebox notify retry ID.",
		Args: cobra.NoArgs,
	}
	out := addOutputFlag(cmd, outputTable, outputJSON)
	cmd.Flags().StringVar(&f.Channel, "channel", "", "only the notifications to this channel")
	cmd.Flags().IntVar(&f.Limit, "limit", notifyListLimit, "at most this many, newest first (0: all)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		f.Status = timebox.DeliveryFailed
		return listDeliveries(cmd, out, f, func(w io.Writer, ds []*timebox.Delivery) error {
			if len(ds) == 0 {
				_, err := fmt.Fprintln(w, "no failed notifications")
				return err
			}
			rows := make([][]string, 0, len(ds))
			for _, d := range ds {
				rows = append(rows, []string{strconv.FormatInt(d.ID, 10), d.Channel, d.Kind, d.RequestID, d.Recipient,
					strconv.Itoa(d.Attempts), shorten(d.LastError, 60), localTime(d.CreatedAt)})
			}
			return outTable(w, []string{"ID", "CHANNEL", "KIND", "REQUEST", "RECIPIENT", "ATTEMPTS", "LAST ERROR", "CREATED"}, rows)
		})
	}
	return cmd
}

func newNotifyListCommand() *cobra.Command {
	var f timebox.DeliveryFilter
	var status string
	cmd := &cobra.Command{
		Use:   "list [--request ID] [--status S] [--channel NAME] [--limit N]",
		Short: "List notification deliveries, newest first: where each stands",
		Args:  cobra.NoArgs,
	}
	out := addOutputFlag(cmd, outputTable, outputJSON)
	cmd.Flags().StringVar(&f.RequestID, "request", "", "only the notifications about this request")
	cmd.Flags().StringVar(&status, "status", "", "only those in this status: pending, sending, sent or failed")
	cmd.Flags().StringVar(&f.Channel, "channel", "", "only the notifications to this channel")
	cmd.Flags().IntVar(&f.Limit, "limit", notifyListLimit, "at most this many, newest first (0: all)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var err error
		if f.Status, err = timebox.ParseDeliveryStatus(status); err != nil {
			return usagef("--status: %s", timebox.ErrorMessage(err))
		}
		return listDeliveries(cmd, out, f, func(w io.Writer, ds []*timebox.Delivery) error {
			if len(ds) == 0 {
				_, err := fmt.Fprintln(w, "no notifications")
				return err
			}
			rows := make([][]string, 0, len(ds))
			for _, d := range ds {
				rows = append(rows, []string{strconv.FormatInt(d.ID, 10), string(d.Status), d.Channel, d.Kind, d.RequestID,
					d.Recipient, strconv.Itoa(d.Attempts), localTime(d.CreatedAt), localTime(d.SentAt), shorten(d.LastError, 40)})
			}
			return outTable(w, []string{"ID", "STATUS", "CHANNEL", "KIND", "REQUEST", "RECIPIENT", "ATTEMPTS", "CREATED", "SENT", "LAST ERROR"}, rows)
		})
	}
	return cmd
}

// listDeliveries asks for the deliveries f selects and prints them as JSON or with table;
// a table that the limit cut says so on stderr.
func listDeliveries(cmd *cobra.Command, out *outputFlag, f timebox.DeliveryFilter, table func(io.Writer, []*timebox.Delivery) error) error {
	if f.Limit < 0 {
		return usagef("--limit must not be negative")
	}
	return callAPI(cmd, out, func(ctx context.Context, c *tbhttp.Client) ([]*timebox.Delivery, error) {
		ds, err := c.Deliveries(ctx, f)
		return nonNilSlice(ds), err
	}, func(w io.Writer, ds []*timebox.Delivery) error {
		if err := table(w, ds); err != nil {
			return err
		}
		if f.Limit > 0 && len(ds) == f.Limit {
			fmt.Fprintf(cmd.ErrOrStderr(), "(the newest %d; --limit 0 shows all)\n", f.Limit)
		}
		return nil
	})
}

func newNotifyRetryCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "retry ID",
		Short: "Send a failed notification again, by its ID (see timebox notify failed); admins",
		Long: "Puts a failed notification back in the outbox, due now, with its attempts reset; the\n" +
			"audit log records who did (notify.retried). It is sent with its idempotency key, so a\n" +
			"receiver that deduplicates shows it once. Admins only.",
		Args: exactArgs("notification ID (see timebox notify failed)"),
	}
	out := addOutputFlag(cmd, outputTable, outputJSON)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := tbhttp.ParseDeliveryID(args[0])
		if err != nil {
			return usagef("%s", timebox.ErrorMessage(err))
		}
		return callAPI(cmd, out, func(ctx context.Context, c *tbhttp.Client) (*timebox.Delivery, error) {
			return c.RetryDelivery(ctx, id)
		}, func(w io.Writer, d *timebox.Delivery) error {
			about := ""
			if d.RequestID != "" {
				about = " about request " + d.RequestID
			}
			if d.Recipient != "" {
				about += " to " + d.Recipient
			}
			fmt.Fprintf(w, "notification %d (%s on %s%s) is queued again, due now, its attempts reset\n",
				d.ID, cleanText(d.Kind), cleanText(d.Channel), cleanText(about))
			if d.LastError != "" {
				fmt.Fprintf(w, "its last error was: %s\n", cleanText(d.LastError))
			}
			return nil
		})
	}
	return cmd
}
