// A custom producer: put words into "tasks", read one reply per word from
// "results". Run with DISTQ_AUTHKEY_FILE set: producer -master host:port.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"

	"github.com/distq/distq"
)

func main() {
	master := flag.String("master", "127.0.0.1:4000", "master host:port")
	flag.Parse()
	key, err := distq.LoadKey("") // $DISTQ_AUTHKEY_FILE or $DISTQ_AUTHKEY
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	c, err := distq.Dial(ctx, *master, distq.Options{AuthKey: key})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	words := []string{"alpha", "beta", "gamma", "delta"}
	for _, w := range words {
		if _, err := c.Queue("tasks").Put(ctx, []byte(w)); err != nil {
			log.Fatal(err)
		}
	}
	for range words {
		r, err := c.Queue("results").Get(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("task %d -> %s\n", r.ReplyTo, r.Payload)
	}
}
