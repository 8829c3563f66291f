// Command etcdmember runs one member of an etcd cluster with etcd's own server code (the embed
// package), for the chaos suite: it needs a real three-member cluster whose members it can kill
// one by one, so each member is its own process. It prints "ready" once the member serves
// requests, exits 0 on SIGTERM or SIGINT, and logs nothing unless --log-level says so.
//
//	etcdmember --name m1 --dir /tmp/m1 --client-addr 127.0.0.1:23791 --peer-addr 127.0.0.1:23801 \
//	    --initial-cluster m1=http://127.0.0.1:23801,m2=http://127.0.0.1:23802,m3=http://127.0.0.1:23803
//
// On a restart with the same --dir the member rejoins with its data and the --initial-cluster flags
// are ignored, as etcd does.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "etcdmember:", err)
		os.Exit(1)
	}
}

func run() error {
	name := flag.String("name", "", "member `name`")
	dir := flag.String("dir", "", "data `directory`")
	client := flag.String("client-addr", "", "client `host:port`")
	peer := flag.String("peer-addr", "", "peer `host:port`")
	cluster := flag.String("initial-cluster", "", "`name=peerURL,...` of every member")
	token := flag.String("token", "streamhouse-chaos", "initial cluster `token`")
	fsync := flag.Bool("fsync", false, "fsync writes (a process kill loses nothing without it; only a machine crash would)")
	logLevel := flag.String("log-level", "", "log etcd's messages at this `level` (debug, info, warn, error) to stderr; empty: none")
	flag.Parse()
	if *name == "" || *dir == "" || *client == "" || *peer == "" || *cluster == "" {
		return fmt.Errorf("--name, --dir, --client-addr, --peer-addr and --initial-cluster are required")
	}
	cfg, err := config(*name, *dir, *client, *peer, *cluster, *token)
	if err != nil {
		return err
	}
	cfg.UnsafeNoFsync = !*fsync
	if *logLevel == "" {
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	} else {
		cfg.LogLevel, cfg.LogOutputs = *logLevel, []string{"stderr"}
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start %s: %w", *name, err)
	}
	defer e.Close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-e.Server.ReadyNotify():
		fmt.Println("ready")
	case err := <-e.Err():
		return err
	case <-sig:
		return nil
	}
	select {
	case err := <-e.Err():
		return err
	case <-e.Server.StopNotify():
		return fmt.Errorf("%s stopped", *name)
	case <-sig:
		return nil
	}
}

func config(name, dir, client, peer, cluster, token string) (*embed.Config, error) {
	curl, err := url.Parse("http://" + client)
	if err != nil {
		return nil, fmt.Errorf("--client-addr: %w", err)
	}
	purl, err := url.Parse("http://" + peer)
	if err != nil {
		return nil, fmt.Errorf("--peer-addr: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = name, dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*curl}, []url.URL{*curl}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*purl}, []url.URL{*purl}
	cfg.InitialCluster, cfg.InitialClusterToken = cluster, token
	cfg.ClusterState = embed.ClusterStateFlagNew
	// The settings StreamHouse's operating guide asks for.
	cfg.AutoCompactionMode, cfg.AutoCompactionRetention = "revision", "10000"
	// A killed member must be noticed, and a new leader elected, in about a second, as on a LAN.
	cfg.TickMs, cfg.ElectionMs = 100, 1000
	cfg.StrictReconfigCheck = true
	cfg.Metrics = "basic"
	return cfg, nil
}
