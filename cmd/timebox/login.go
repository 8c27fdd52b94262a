package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// cliCredentials is what `timebox login` saves: the API server and the user's token.
type cliCredentials struct {
	Server string `json:"server"`
	Token  string `json:"token"`
}

// credentialsFileName is the file, in the client configuration directory, that holds the
// saved credentials (mode 0600).
const credentialsFileName = "credentials.json"

// cliConfigDir returns the client configuration directory: $TIMEBOX_CONFIG_DIR, else
// $XDG_CONFIG_HOME/timebox, else ~/.config/timebox.
func cliConfigDir() (string, error) {
	if d := os.Getenv("TIMEBOX_CONFIG_DIR"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "timebox"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", timebox.Errorf(timebox.EINVALID, "cannot find the configuration directory: set TIMEBOX_CONFIG_DIR or HOME")
	}
	return filepath.Join(home, ".config", "timebox"), nil
}

// readCLICredentials returns the saved credentials, or empty ones when none were saved.
func readCLICredentials() (cliCredentials, error) {
	var c cliCredentials
	dir, err := cliConfigDir()
	if err != nil {
		return c, err
	}
	path := filepath.Join(dir, credentialsFileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	} else if err != nil {
		return c, timebox.Errorf(timebox.EINVALID, "cannot read %s: %v", path, errors.Unwrap(err))
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, timebox.Errorf(timebox.EINVALID, "%s is not valid JSON: run timebox login again", path)
	}
	return c, nil
}

// writeCLICredentials saves c to the credentials file, readable by its owner only, and
// returns its path. The file is replaced atomically.
func writeCLICredentials(c cliCredentials) (string, error) {
	dir, err := cliConfigDir()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, credentialsFileName)
	fail := func(err error) (string, error) {
		return "", timebox.Errorf(timebox.EINVALID, "cannot save the credentials to %s: %v", path, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(err)
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	f, err := os.CreateTemp(dir, ".credentials-*.json") // created with mode 0600
	if err != nil {
		return fail(err)
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Chmod(0o600)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fail(err)
	}
	return path, nil
}

// newAPIClient returns a client of the API server named by TIMEBOX_SERVER and TIMEBOX_TOKEN,
// which win over the credentials saved by `timebox login`. A saved token is only ever sent
// to the server it was saved with.
func newAPIClient() (*tbhttp.Client, error) {
	server, token := os.Getenv("TIMEBOX_SERVER"), os.Getenv("TIMEBOX_TOKEN")
	if server == "" || token == "" {
		saved, err := readCLICredentials()
		if err != nil {
			return nil, err
		}
		if server == "" {
			server = saved.Server
		}
		if token == "" && sameServer(server, saved.Server) {
			token = saved.Token
		}
	}
	switch {
	case server == "":
		return nil, timebox.Errorf(timebox.EUNAUTHORIZED, "no server: set TIMEBOX_SERVER or run timebox login")
	case token == "":
		return nil, timebox.Errorf(timebox.EUNAUTHORIZED, "no token for %s: set TIMEBOX_TOKEN or run timebox login --server %s", server, server)
	}
	base, err := checkServerURL(server)
	if err != nil {
		return nil, err
	}
	return tbhttp.NewClient(base, token), nil
}

func sameServer(a, b string) bool {
	return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
}

// checkServerURL validates an API server URL and returns it without a trailing slash.
func checkServerURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", timebox.Errorf(timebox.EINVALID, "invalid server URL %q: use http(s)://host[:port]", s)
	} else if u.User != nil {
		return "", timebox.Errorf(timebox.EINVALID, "invalid server URL: it must not contain credentials")
	}
	return strings.TrimRight(s, "/"), nil
}

// loopbackHost reports whether the URL's host is this machine, where plain HTTP is fine.
func loopbackHost(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	if p.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(p.Hostname())
	return ip != nil && ip.IsLoopback()
}

// newLoginCommand builds `timebox login`.
func newLoginCommand() *cobra.Command {
	var server, token string
	cmd := &cobra.Command{
		Use:   "login --server URL --token TOKEN",
		Short: "Check a token against a server and save both for the other commands",
		Long: "Checks the token with the server, then saves the server and token to\n" +
			"$TIMEBOX_CONFIG_DIR (or $XDG_CONFIG_HOME/timebox, or ~/.config/timebox)/credentials.json,\n" +
			"readable by you only. Use --token - to read the token from standard input, which\n" +
			"keeps it out of your shell history and the process list.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case server == "":
				return usagef("--server is required, e.g. --server https://timebox.example.com")
			case token == "":
				return usagef("--token is required (use --token - to read it from standard input)")
			}
			base, err := checkServerURL(server)
			if err != nil {
				return err
			}
			if token == "-" {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && line == "" {
					return usagef("--token -: no token on standard input")
				}
				token = strings.TrimSpace(line)
			}
			if token == "" || strings.ContainsAny(token, " \t\r\n") {
				return usagef("the token is empty or contains spaces")
			}
			if strings.HasPrefix(base, "http://") && !loopbackHost(base) {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s is plain HTTP: the token travels unencrypted; use https://\n", base)
			}
			me, err := tbhttp.NewClient(base, token).Me(cmd.Context())
			if err != nil {
				return fmt.Errorf("login: %w", err)
			}
			if _, err := writeCLICredentials(cliCredentials{Server: base, Token: token}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "logged in to %s as %s\n", base, cleanText(me.User))
			return nil
		},
	}
	cmd.Flags().StringVar(&server, "server", "", "URL of the Timebox server")
	cmd.Flags().StringVar(&token, "token", "", "API token, or - to read it from standard input")
	return cmd
}
