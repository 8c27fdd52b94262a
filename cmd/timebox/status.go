package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
)

// newStatusCommand returns `timebox status`: each server's health and pending work.
func newStatusCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each database server: reachable, last error, pending work (admins and auditors)",
		Args:  cobra.NoArgs,
	}
	out := addOutputFlag(cmd, outputTable, outputJSON)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := out.client()
		if err != nil {
			return err
		}
		st, err := c.Status(cmd.Context())
		if err != nil {
			return err
		}
		if out.value == outputJSON {
			return outJSON(cmd.OutOrStdout(), st)
		}
		rows := [][]string{}
		for _, s := range st.Servers {
			reach := "unknown"
			if s.Reachable != nil {
				reach = map[bool]string{true: "yes", false: "NO"}[*s.Reachable]
			}
			rows = append(rows, []string{s.Name, s.Engine, reach, localTime(s.LastOKAt), cleanText(s.LastError),
				strconv.Itoa(s.Active), strconv.Itoa(s.Activating), strconv.Itoa(s.Removing), strconv.Itoa(s.Retrying),
				strconv.Itoa(s.Failing), noBackstopText(s.NoBackstop)})
		}
		if !st.Leader {
			cmd.PrintErrln("note: this server does not do the database work for the store; health is known on the one that does")
		}
		if err := outTable(cmd.OutOrStdout(), []string{"SERVER", "ENGINE", "REACHABLE", "LAST OK", "LAST ERROR", "ACTIVE", "ACTIVATING", "REMOVING", "RETRYING", "FAILING", "NO BACKSTOP"}, rows); err != nil {
			return err
		}
		for _, s := range st.Servers { // what fails or retries, not only in the server's log
			for _, p := range s.Problems {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", s.Name, cleanText(p))
			}
		}
		if len(st.Tampered) == 0 {
			return nil
		}
		rows = [][]string{}
		for _, r := range st.Tampered {
			rows = append(rows, []string{r.ID, cleanText(r.Requester), cleanText(r.Database), string(r.State), cleanText(r.Fields)})
		}
		fmt.Fprintf(cmd.OutOrStdout(), "\nTAMPERED: %d request(s) edited in the store without the key; their access was removed, nothing applied (docs/store-integrity.md)\n", len(rows))
		return outTable(cmd.OutOrStdout(), []string{"REQUEST", "REQUESTER", "DATABASE", "STATE", "FIELDS THAT DO NOT VERIFY"}, rows)
	}
	return cmd
}

// noBackstopText is the NO BACKSTOP column: how many active grants have no database-side end,
// flagged, or "0".
func noBackstopText(n int) string {
	if n == 0 {
		return "0"
	}
	return strconv.Itoa(n) + " (ends only through Timebox)"
}
