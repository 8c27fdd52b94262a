package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unicode"

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
	var sso bool
	cmd := &cobra.Command{
		Use:   "login --server URL [--sso] [--ca-file FILE]",
		Short: "Sign in (with a token, or through the console's single sign-on) and save it for the other commands",
		Long: "Reads the token at a prompt (without echo) or from standard input, checks it with\n" +
			"the server, then saves the server and token to $TIMEBOX_CONFIG_DIR (or\n" +
			"$XDG_CONFIG_HOME/timebox, or ~/.config/timebox)/credentials.json, readable by you\n" +
			"only. A token is never taken from the command line, where ps and shell history show it.\n" +
			"Tokens come from an admin: timebox admin token create --user NAME.\n\n" +
			"With --sso, login opens the console in your browser instead: you sign in there (through\n" +
			"your organisation's provider), allow the CLI, and the browser hands a one-time code back\n" +
			"to login on 127.0.0.1, which exchanges it for an API token of yours.",
		Example: "  timebox login --server https://timebox.example.com --sso\n" +
			"  timebox login --server https://timebox.example.com\n" +
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
			if sso {
				if token != "" {
					return usagef("--sso and --token exclude each other: --sso gets a new token through the browser")
				}
				return ssoLogin(cmd, base, caFile)
			}
			secret, err := readToken(cmd)
			if err != nil {
				return err
			}
			return login(cmd, cliCredentials{Server: base, Token: secret, CAFile: caFile})
		},
	}
	cmd.Flags().StringVar(&server, "server", "", "URL of the Timebox server")
	cmd.Flags().BoolVar(&sso, "sso", false, "sign in through the console in a browser (single sign-on) and get a new API token")
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

// ssoWait is how long `timebox login --sso` waits for the browser to come back.
const ssoWait = 5 * time.Minute

// openBrowser tries to open u in the person's browser; it never fails the login (the URL is
// printed too). Tests replace it.
var openBrowser = func(u string) error {
	var name string
	var args []string
	switch runtime.GOOS {
	case "darwin":
		name = "open"
	case "windows":
		name, args = "rundll32", []string{"url.dll,FileProtocolHandler"}
	default:
		name = "xdg-open"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return err
	}
	c := exec.Command(path, append(args, u)...)
	if err := c.Start(); err != nil {
		return err
	}
	go c.Wait()
	return nil
}

// ssoResult is what the browser brought back to the loopback listener.
type ssoResult struct {
	code string
	err  error
}

// ssoLogin is `timebox login --sso`: it listens on 127.0.0.1, sends the person's browser to
// the console's /cli/authorize with a state and a PKCE challenge, waits for the console to
// send the browser back with a one-time code, and exchanges code and verifier for a token.
func ssoLogin(cmd *cobra.Command, base, caFile string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return timebox.Errorf(timebox.EUNAVAILABLE, "login --sso: cannot listen on 127.0.0.1 for the browser's answer: %v", err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	verifier, state := timebox.RandomID(64), timebox.RandomID(32)
	q := url.Values{"port": {strconv.Itoa(port)}, "state": {state}, "challenge": {timebox.S256Challenge(verifier)}, "name": {cliHostName()}}
	link := base + "/cli/authorize?" + q.Encode()

	results := make(chan ssoResult, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query()
		if r.URL.Path != "/callback" || subtle.ConstantTimeCompare([]byte(v.Get("state")), []byte(state)) != 1 {
			// Not the console's answer to this login (another page, an old tab): keep waiting.
			http.Error(w, "This is not the answer timebox login is waiting for.", http.StatusBadRequest)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		var res ssoResult
		switch {
		case v.Get("error") != "":
			res.err = timebox.Errorf(timebox.EFORBIDDEN, "login --sso: the CLI was not allowed in the browser (%s)", cleanText(timebox.Clip(v.Get("error"))))
			fmt.Fprintln(w, "Timebox: the CLI was not allowed. You can close this tab.")
		case v.Get("code") == "":
			res.err = timebox.Errorf(timebox.EINVALID, "login --sso: the browser came back without a code")
			http.Error(w, "Timebox: no code came back. Run timebox login --sso again.", http.StatusBadRequest)
		default:
			res.code = v.Get("code")
			fmt.Fprintln(w, "Timebox: signed in. You can close this tab and go back to the terminal.")
		}
		select {
		case results <- res:
		default:
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()

	fmt.Fprintf(cmd.ErrOrStderr(), "Opening the Timebox console in your browser to sign in. If it does not open, visit:\n\n  %s\n\n", link)
	_ = openBrowser(link) // the link is printed: a machine without a browser still works

	ctx, cancel := context.WithTimeout(cmd.Context(), ssoWait)
	defer cancel()
	var res ssoResult
	select {
	case res = <-results:
	case <-ctx.Done():
		return timebox.Errorf(timebox.EUNAVAILABLE, "login --sso: no answer from the browser within %s: run it again", ssoWait)
	}
	if res.err != nil {
		return res.err
	}
	c := tbhttp.NewClient(base, "")
	if caFile != "" {
		if err := c.TrustCAFile(caFile); err != nil {
			return err
		}
	}
	tok, err := c.CLIToken(ctx, res.code, verifier)
	if err != nil {
		return fmt.Errorf("login --sso: %w", err)
	}
	return login(cmd, cliCredentials{Server: base, Token: tok.Token, CAFile: caFile})
}

// cliHostName is this machine's name as the console shows it ("this computer" when it has
// none that fits).
func cliHostName() string {
	h, _ := os.Hostname()
	h = strings.Map(func(r rune) rune {
		if r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '-' || r == '_') {
			return r
		}
		return '-'
	}, h)
	h = strings.TrimLeft(h, ".-_")
	if len(h) > 64 {
		h = h[:64]
	}
	if h == "" {
		return "localhost"
	}
	return h
}
