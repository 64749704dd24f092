// A custom worker: upper-case every task's payload and reply into
// "results". Run with DISTQ_AUTHKEY_FILE set: worker -master host:port.
package main

import (
	"bytes"
	"context"
	"flag"
	"log"
	"os"
	"os/signal"

	"github.com/distq/distq"
)

func main() {
	master := flag.String("master", "127.0.0.1:4000", "master host:port")
	flag.Parse()
	key, err := distq.LoadKey("")
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c, err := distq.NewClient(*master, distq.Options{AuthKey: key})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	w, err := c.NewWorker(distq.WorkerConfig{Concurrency: 4}, func(ctx context.Context, t *distq.Task) ([]byte, error) {
		return bytes.ToUpper(t.Payload), nil
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := w.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
