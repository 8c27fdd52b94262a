package main

import (
	"bufio"
	"cmp"
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
	"golang.org/x/term"
)

// cliCredentials is what `timebox login` saves: the API server, the user's token, and the
// CA certificate file that verifies the server's certificate, if any.
type cliCredentials struct {
	Server string `json:"server"`
	Token  string `json:"token"`
	CAFile string `json:"ca_file,omitempty"`
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
// to the server it was saved with. TIMEBOX_CA_FILE (or the saved CA file) names a CA
// certificate to trust for an https server.
func newAPIClient() (*tbhttp.Client, error) {
	server, token, caFile := os.Getenv("TIMEBOX_SERVER"), os.Getenv("TIMEBOX_TOKEN"), os.Getenv("TIMEBOX_CA_FILE")
	if server == "" || token == "" || caFile == "" {
		saved, err := readCLICredentials()
		if err != nil && (server == "" || token == "") { // only the CA file was looked for
			return nil, err
		}
		if server == "" {
			server = saved.Server
		}
		if sameServer(server, saved.Server) {
			token, caFile = cmp.Or(token, saved.Token), cmp.Or(caFile, saved.CAFile)
		}
	}
	switch {
	case server == "":
		return nil, timebox.Errorf(timebox.EUNAUTHORIZED, "no server: set TIMEBOX_SERVER or run timebox login --server URL")
	case token == "":
		return nil, timebox.Errorf(timebox.EUNAUTHORIZED, "no token for %s: an admin issues tokens (timebox admin token create --user NAME); then run timebox login --server %s or set TIMEBOX_TOKEN", server, server)
	}
	return apiClient(server, token, caFile)
}

// apiClient returns a client of server with token, trusting caFile when it is set.
func apiClient(server, token, caFile string) (*tbhttp.Client, error) {
	base, err := checkServerURL(server)
	if err != nil {
		return nil, err
	}
	c := tbhttp.NewClient(base, token)
	if caFile != "" {
		if err := c.TrustCAFile(caFile); err != nil {
			return nil, err
		}
	}
	return c, nil
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
	var server, token, caFile string
	cmd := &cobra.Command{
		Use:   "login --server URL [--ca-file FILE]",
		Short: "Check a token against a server and save both for the other commands",
		Long: "Reads the token at a prompt (without echo) or from standard input, checks it with\n" +
			"the server, then saves the server and token to $TIMEBOX_CONFIG_DIR (or\n" +
			"$XDG_CONFIG_HOME/timebox, or ~/.config/timebox)/credentials.json, readable by you\n" +
			"only. A token is never taken from the command line, where ps and shell history show it.\n" +
			"Tokens come from an admin: timebox admin token create --user NAME.",
		Example: "  timebox login --server https://timebox.example.com\n" +
			"  timebox login --server https://timebox.example.com < token.txt\n" +
			"  timebox login --server https://timebox.internal:8443 --ca-file ca.pem",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 { // never echo them: one may be the token
				return usagef("login takes no arguments: %s", argvTokenHint)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case server == "":
				return usagef("--server is required, e.g. --server https://timebox.example.com")
			case token != "" && token != "-":
				return usagef("--token: a token on the command line is visible to other users (ps) and stays in shell history: %s", argvTokenHint)
			}
			base, err := checkServerURL(server)
			if err != nil {
				return err
			}
			if caFile != "" {
				if caFile, err = filepath.Abs(caFile); err != nil {
					return usagef("--ca-file: %v", err)
				}
			}
			secret, err := readToken(cmd)
			if err != nil {
				return err
			}
			return login(cmd, cliCredentials{Server: base, Token: secret, CAFile: caFile})
		},
	}
	cmd.Flags().StringVar(&server, "server", "", "URL of the Timebox server")
	cmd.Flags().StringVar(&caFile, "ca-file", "", "CA certificate (PEM) that signed the server's certificate, saved for later commands")
	cmd.Flags().StringVar(&token, "token", "", "refused with a value: the token is read from the prompt or standard input")
	cmd.Flags().Lookup("token").Hidden = true
	return cmd
}

// argvTokenHint says how to give login a token.
const argvTokenHint = "type the token at the prompt, or pipe it in (timebox login --server URL < token-file)"

// readToken reads the token: at a prompt without echo when standard input is a terminal,
// else the first line of standard input.
func readToken(cmd *cobra.Command) (string, error) {
	var line string
	if f, ok := cmd.InOrStdin().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(cmd.ErrOrStderr(), "API token: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", usagef("cannot read the token from the terminal: %v", err)
		}
		line = string(b)
	} else {
		l, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
		if err != nil && l == "" {
			return "", usagef("no token on standard input: %s", argvTokenHint)
		}
		line = l
	}
	token := strings.TrimSpace(line)
	if token == "" || strings.ContainsAny(token, " \t\r\n") {
		return "", usagef("the token is empty or contains spaces")
	}
	return token, nil
}

// login checks creds with the server and saves them.
func login(cmd *cobra.Command, creds cliCredentials) error {
	if strings.HasPrefix(creds.Server, "http://") && !loopbackHost(creds.Server) {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s is plain HTTP: the token travels unencrypted; use https://\n", creds.Server)
	}
	c, err := apiClient(creds.Server, creds.Token, creds.CAFile)
	if err != nil {
		return err
	}
	me, err := c.Me(cmd.Context())
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if _, err := writeCLICredentials(creds); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "logged in to %s as %s\n", creds.Server, cleanText(me.User))
	return nil
}
