package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// devStoreFiles are the files of the local instance's SQLite store.
var devStoreFiles = []string{"timebox.db", "timebox.db-wal", "timebox.db-shm"}

// devKey decides whether `timebox dev` goes on with what data holds from an earlier run: it
// returns true when data has a secret key (which setupDev then keeps, so the store's sealed
// passwords still open). A store without its key cannot be read: it is moved aside
// (timebox.db.old-<time>), never silently reused or deleted, and the instance starts fresh.
func devKey(data string) (bool, error) {
	key := filepath.Join(data, "secret.key")
	switch b, err := os.ReadFile(key); {
	case err == nil && len(b) >= 16:
		return true, nil
	case err == nil:
		return false, timebox.Errorf(timebox.EINVALID, "--data %s: secret.key is shorter than 16 bytes; remove it to start fresh", data)
	case !errors.Is(err, fs.ErrNotExist):
		return false, timebox.Errorf(timebox.EINVALID, "--data %s: cannot read secret.key", data)
	}
	suffix := ".old-" + time.Now().UTC().Format("20060102T150405")
	for _, name := range devStoreFiles {
		p := filepath.Join(data, name)
		if _, err := os.Stat(p); err == nil {
			if err := os.Rename(p, p+suffix); err != nil {
				return false, timebox.Errorf(timebox.EINVALID, "--data %s: cannot move the store without a key aside", data)
			}
		}
	}
	return false, nil
}

// devTokens returns a token for every dev user: the one an earlier run wrote to dev.json
// when the server still accepts it, else a new one.
func devTokens(ctx context.Context, in *instance, cfg *Config, data string) (map[string]string, error) {
	var old devInfo
	if b, err := os.ReadFile(filepath.Join(data, "dev.json")); err == nil {
		json.Unmarshal(b, &old) // an unreadable file: new tokens for everyone
	}
	tokens := map[string]string{}
	for _, u := range devUsers {
		if t := old.Tokens[u.Name]; t != "" {
			if me, err := tbhttp.NewClient(in.URL(), t).Me(ctx); err == nil && me.User == u.Name {
				tokens[u.Name] = t
				continue
			}
		}
		t, err := createToken(ctx, in.Store, &cfg.Catalog, in.Service.Keys, u.Name)
		if err != nil {
			return nil, fmt.Errorf("dev token for %s: %w", u.Name, err)
		}
		tokens[u.Name] = t
	}
	return tokens, nil
}

// writeDevTokens writes <data>/tokens.env: one NAME=token line per dev user (ALICE=tbx_…),
// for a shell to source (`. DIR/tokens.env`), readable by its owner only.
func writeDevTokens(data string, tokens map[string]string) (string, error) {
	var b strings.Builder
	b.WriteString("# Written by timebox dev: the API tokens of its users. Source it: . " + filepath.Join(data, "tokens.env") + "\n")
	for _, u := range devUsers {
		fmt.Fprintf(&b, "%s=%s\n", strings.ToUpper(u.Name), tokens[u.Name])
	}
	path := filepath.Join(data, "tokens.env")
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}
