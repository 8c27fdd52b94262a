# The two commands of the README: `go run ./cmd/timebox dev` runs Timebox, `make test` tests it.
GO ?= go

.PHONY: test bench build vet fmt-check deps fuzz

build:
	$(GO) build -o timebox ./cmd/timebox

# test checks formatting and vet, makes sure the database server binaries the tests start are
# installed, then runs every test against real PostgreSQL and MariaDB (password auth).
test: deps fmt-check vet
	CI=true $(GO) test -count=1 -timeout 14m ./...   # CI=true: a missing database fails, never skips

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

deps:
	@scripts/ensure-deps

# bench prints activation latency, expiry lag and revocation throughput beside their baselines,
# then the console's page render times with 10,000 requests and the live-update latency, then
# event → webhook delivered and activation/expiry lag with a webhook receiver down, healthy and
# draining a burst of 10,000 events.
bench: deps
	$(GO) run ./bench
	$(GO) run ./bench -console
	$(GO) run ./bench -notify

# fuzz runs each fuzz target for a short while (the seed corpus also runs in `make test`).
fuzz:
	$(GO) test ./engine/postgres -run '^$$' -fuzz FuzzQuoteIdent -fuzztime 30s
	$(GO) test ./engine/postgres -run '^$$' -fuzz FuzzQuoteLiteral -fuzztime 30s
	$(GO) test ./engine/mysql -run '^$$' -fuzz FuzzQuoteIdent -fuzztime 30s
	$(GO) test ./engine/mysql -run '^$$' -fuzz FuzzQuoteString -fuzztime 30s
	$(GO) test . -run '^$$' -fuzz FuzzParseDuration -fuzztime 30s
	$(GO) test ./http -run '^$$' -fuzz FuzzCreateRequest -fuzztime 30s
	$(GO) test ./http -run '^$$' -fuzz FuzzApprove -fuzztime 30s
	$(GO) test ./http -run '^$$' -fuzz FuzzQuery -fuzztime 30s
	$(GO) test . -run '^$$' -fuzz FuzzNormalizeTables -fuzztime 30s
	$(GO) test ./oncall -run '^$$' -fuzz FuzzParse -fuzztime 30s
