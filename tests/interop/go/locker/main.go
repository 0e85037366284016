// goose-locker runs goose's Provider with its Postgres session advisory lock, as an application embedding
// goose does (the goose CLI takes no lock). Built at test time by tests/harness/gopeers.py.
//
//	goose-locker DSN DIR up|status
//
// It prints one line per migration result: "<direction> <version> <source>", or "status <state> <version>".
package main

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

func main() {
	if len(os.Args) != 4 {
		log.Fatal("usage: goose-locker DSN DIR up|status")
	}
	dsn, dir, command := os.Args[1], os.Args[2], os.Args[3]
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	// Retry every second for up to two minutes, as a service starting next to another one would.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 120))
	if err != nil {
		log.Fatal(err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, os.DirFS(dir), goose.WithSessionLocker(locker))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	switch command {
	case "up":
		results, err := provider.Up(ctx)
		for _, result := range results {
			fmt.Printf("%s %d %s\n", result.Direction, result.Source.Version, result.Source.Path)
		}
		if err != nil {
			log.Fatal(err)
		}
	case "status":
		statuses, err := provider.Status(ctx)
		if err != nil {
			log.Fatal(err)
		}
		for _, status := range statuses {
			fmt.Printf("status %s %d\n", status.State, status.Source.Version)
		}
	default:
		log.Fatalf("unknown command %q", command)
	}
}
