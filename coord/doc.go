// Package coord is StreamHouse's one door to etcd: the embedded etcd of dev mode and tests, the
// agent registry on a session lease, partition leadership, fenced index commits and the watched
// in-memory view of the cluster's metadata that agents read on hot paths.
//
// Everything coord writes follows the key layout of docs/INTERNALS.md under one prefix:
//
//	agents/<id>                               JSON AgentInfo, on the agent's session lease
//	topics/<name>                             JSON Topic
//	leaders/<topic id>/<partition>            agent id; create revision = the partition's epoch
//	index/<topic id>/<partition>/<base %020d> JSON IndexEntry
//	producers/<topic id>/<partition>/<pid>    JSON ProducerState
//	pid/next                                  next free producer id (decimal)
//	cluster/secret                            the secret agents prove to each other (hex)
//	groups/<ns>/meta|offsets|version/<group>  consumer groups (groups.go)
//	groups/<ns>/pending/<group>/<pid>         JSON PendingOffsets: a transaction's offsets, not yet visible
//	txns/<ns>/<transactional id>              JSON TxnMeta; ModRevision = its version (txns.go)
//	users/<user>/<SCRAM mechanism>            JSON ScramCredential: salt, iterations, StoredKey, ServerKey
//	acls/<binding id>                         JSON ACLBinding
//	quotas/user/<u>[/client-id/<c>], quotas/client-id/<c>   JSON byte-rate quota values
//
// The invariants coord carries for the whole system:
//
//   - Every write that makes record data visible (Session.Commit) is one etcd Txn guarded, per
//     partition, by Compare(CreateRevision(leaders/<t>/<p>) == epoch). A leader whose key expired
//     or was re-created by a successor gets ErrFenced and nothing it wrote becomes visible.
//   - All of an agent's leader keys hang off its one session lease, so renewal costs O(agents) and
//     losing the lease (Session.Done) drops every leadership at once.
//   - A partition's next offset is derived from its last index entry, never stored twice.
//
// coord must not know the Kafka protocol (no kmsg, no error codes), must not touch object
// storage, and must not decide placement: it executes what the agent asks and reports
// conditions the agent acts on as sentinel errors (ErrFenced, ErrLeaderHeld, ...).
//
// A minimal dev-mode setup:
//
//	e, err := coord.StartEmbedded(ctx, coord.EmbedConfig{Dir: dir, ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0"})
//	if err != nil { ... }
//	defer e.Close()
//	c, err := coord.Connect(ctx, coord.Config{Endpoints: e.Endpoints()})
//	if err != nil { ... }
//	defer c.Close()
//	s, err := c.Register(ctx, coord.AgentInfo{ID: "a1", Addr: "127.0.0.1:9092"}, 10*time.Second)
package coord
