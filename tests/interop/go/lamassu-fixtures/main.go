// goose-lamassu-fixtures stands in for Lamassu's release goose-lamassu while that module cannot be fetched:
// the same command line and the same goose calls (goose.RunContext, goose's older API, with the Go migrations
// compiled in), over the migration trees of tests/fixtures/migrations instead of the embedded upstream ones.
// tests/harness/gopeers.py copies each service's .go files into migrations/<service>/ and writes register.go.
//
//	goose-lamassu-fixtures -dir tests/fixtures/migrations "host=... dbname=<service> ..." COMMAND [ARGS...]
package main

import (
	"context"
	"flag"
	"log"
	"path/filepath"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

func main() {
	root := flag.String("dir", "", "directory holding one migration directory per service")
	flag.Parse()
	args := flag.Args()
	if len(args) < 2 || *root == "" {
		log.Fatal("usage: goose-lamassu-fixtures -dir DIR DBSTRING COMMAND [ARGS...]")
	}
	dbstring, command := args[0], args[1]
	service := ""
	for _, part := range strings.Fields(dbstring) {
		if after, ok := strings.CutPrefix(part, "dbname="); ok {
			service = after
		}
	}
	dir := filepath.Join(*root, service)
	// goose-lamassu registers only the Go migrations of the service it runs; here every service's are
	// registered at start, and goose runs all of them in a directory without .go files.
	if goFiles, _ := filepath.Glob(filepath.Join(dir, "*.go")); len(goFiles) == 0 {
		goose.ResetGlobalMigrations()
	}
	db, err := goose.OpenDBWithDriver("postgres", dbstring)
	if err != nil {
		log.Fatalf("goose-lamassu-fixtures: failed to open DB: %v", err)
	}
	defer db.Close()
	if err := goose.RunContext(context.Background(), command, db, dir, args[2:]...); err != nil {
		log.Fatalf("goose-lamassu-fixtures %v: %v", command, err)
	}
}
