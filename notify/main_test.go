package notify

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	if os.Getenv("NOTIFY_LOG") != "" {
		testLog = os.Stderr
	}
	os.Exit(m.Run())
}
