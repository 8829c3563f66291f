package segstore_test

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/streamhouse/streamhouse/segstore"
)

// Dev mode in miniature: an embedded S3 endpoint on a directory, the S3 store talking to it, one
// flush written and one extent read back by its byte range.
func ExampleS3Server() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "segstore-example")
	defer os.RemoveAll(dir)

	srv, err := segstore.NewS3Server(segstore.S3ServerConfig{Dir: dir, Bucket: "streamhouse"})
	if err != nil {
		panic(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := srv.Start(ln); err != nil {
		panic(err)
	}
	defer srv.Close()

	store, err := segstore.NewS3(ctx, segstore.S3Config{
		Endpoint: srv.Endpoint(), Bucket: "streamhouse", PathStyle: true,
		AccessKeyID: "dev", SecretAccessKey: "dev", // the embedded endpoint accepts any
	})
	if err != nil {
		panic(err)
	}
	if err := store.Check(ctx); err != nil {
		panic(err)
	}

	obj, extents := segstore.AppendObject(nil, []segstore.Chunk{
		{Partition: 0, Data: []byte("batches for partition 0")},
		{Partition: 1, Data: []byte("batches for partition 1")},
	})
	key := segstore.NewObjectKey("agent-1")
	if err := store.Put(ctx, key, obj); err != nil {
		panic(err)
	}

	e := extents[1]
	data, err := store.GetRange(ctx, key, e.Pos, int64(e.Len))
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s (crc ok: %v)\n", data, segstore.VerifyExtent(data, e.CRC) == nil)
	// Output: batches for partition 1 (crc ok: true)
}
