package main

import (
	"context"
	"errors"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func main() {
	addr := os.Getenv("NOTES_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8081"
	}
	users, err := newUsers(bcrypt.DefaultCost, map[string][2]string{
		"alice": {"writer", "alice-password"},
		"bob":   {"reader", "bob-password"},
	})
	if err != nil {
		log.Fatal(err)
	}
	h, _, err := newHandler(config{users: users})
	if err != nil {
		log.Fatal(err) // the document cannot be enforced: refuse to start
	}
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("notes listening on http://%s", addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	// ListenAndServe returns as soon as Shutdown starts: wait for the
	// requests in flight to finish before the process ends.
	<-drained
}
