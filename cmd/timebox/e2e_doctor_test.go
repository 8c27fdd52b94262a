package main

import (
	"context"
	"strings"
	"testing"

	"github.com/timebox-dev/timebox/internal/testdb"
)

// TestE2EDoctor: the cluster hardened as docs/postgres.md says passes `timebox doctor`; a
// database left open to PUBLIC fails it, with the statement that fixes it.
func TestE2EDoctor(t *testing.T) {
	pg, err := testdb.StartPostgres(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	e := newEnv(t, envOptions{pg: pg})
	out, errs, code := e.cli("root", "doctor", "--config", e.cfgPath)
	if code != 0 || !strings.Contains(out, "no database of the server is open to PUBLIC") || strings.Contains(out, "FAIL") {
		t.Fatalf("doctor on a hardened cluster: exit %d\n%s%s", code, out, errs)
	}
	if err := pg.Exec(context.Background(), "postgres", `CREATE DATABASE "left open"`); err != nil {
		t.Fatal(err)
	}
	out, errs, code = e.cli("root", "doctor", "--config", e.cfgPath)
	if code == 0 || !strings.Contains(out, `REVOKE CONNECT ON DATABASE "left open" FROM PUBLIC;`) || !strings.Contains(errs, "error: doctor found 1 problem") {
		t.Fatalf("doctor with an open database: exit %d\n%s%s", code, out, errs)
	}
}
