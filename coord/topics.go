package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// validateTopic rejects topics whose keys could not be built or parsed back.
func validateTopic(t Topic) error {
	switch {
	case t.Name == "":
		return errors.New("coord: topic name is empty")
	case strings.ContainsAny(t.Name, "/\x00"):
		return fmt.Errorf("coord: topic name %q contains '/' or NUL", t.Name)
	case t.Partitions <= 0:
		return fmt.Errorf("coord: topic %q: %d partitions, want > 0", t.Name, t.Partitions)
	}
	return nil
}

// CreateTopic creates t, assigning a random ID if t.ID is zero. It returns the topic as stored,
// or ErrTopicExists if the name is taken.
func (c *Client) CreateTopic(ctx context.Context, t Topic) (Topic, error) {
	defer c.metrics.observeQuery(ctx, opCreateTopic, time.Now())
	if t.ID.IsZero() {
		t.ID = NewTopicID()
	}
	if err := validateTopic(t); err != nil {
		return Topic{}, err
	}
	val, err := json.Marshal(t)
	if err != nil {
		return Topic{}, fmt.Errorf("coord: encode topic %q: %w", t.Name, err)
	}
	key := c.keys.topic(t.Name)
	resp, err := c.etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val))).
		Commit()
	if err != nil {
		return Topic{}, fmt.Errorf("coord: create topic %q: %w", t.Name, err)
	}
	if !resp.Succeeded {
		return Topic{}, fmt.Errorf("%w: %q", ErrTopicExists, t.Name)
	}
	t.Revision = resp.Header.Revision // the put is the Txn's only write
	c.log.Info("topic created", "topic", t.Name, "id", t.ID, "partitions", t.Partitions)
	return t, nil
}

// Topic reads one topic (linearizable). ErrUnknownTopic if it does not exist.
func (c *Client) Topic(ctx context.Context, name string) (Topic, error) {
	t, _, err := c.getTopic(ctx, name)
	return t, err
}

// getTopic returns the topic and the mod revision its compare-and-swap must check.
func (c *Client) getTopic(ctx context.Context, name string) (Topic, int64, error) {
	resp, err := c.etcd.Get(ctx, c.keys.topic(name))
	if err != nil {
		return Topic{}, 0, fmt.Errorf("coord: get topic %q: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return Topic{}, 0, fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	var t Topic
	if err := json.Unmarshal(resp.Kvs[0].Value, &t); err != nil {
		return Topic{}, 0, fmt.Errorf("coord: decode topic %q: %w", name, err)
	}
	t.Revision = resp.Kvs[0].CreateRevision
	return t, resp.Kvs[0].ModRevision, nil
}

// DeleteTopic deletes a topic and, in the same Txn, every key of its partitions (legacy index keys,
// segments, log starts, epoch counters, producer states, leader keys): leaders of its partitions are
// fenced at once. Commit records holding its entries are shared with other topics: they die with
// their last live entry and GC deletes them. ErrUnknownTopic if it does not exist.
func (c *Client) DeleteTopic(ctx context.Context, name string) error {
	defer c.metrics.observeQuery(ctx, opDeleteTopic, time.Now())
	for {
		t, rev, err := c.getTopic(ctx, name)
		if err != nil {
			return err
		}
		key := c.keys.topic(name)
		resp, err := c.etcd.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(
				clientv3.OpDelete(key),
				clientv3.OpDelete(c.keys.index(t.ID), clientv3.WithPrefix()),
				clientv3.OpDelete(c.keys.producers(t.ID), clientv3.WithPrefix()),
				clientv3.OpDelete(c.keys.leaders(t.ID), clientv3.WithPrefix()),
				clientv3.OpDelete(c.keys.segments(t.ID), clientv3.WithPrefix()),
				clientv3.OpDelete(c.keys.logStarts(t.ID), clientv3.WithPrefix()),
				clientv3.OpDelete(c.keys.epochs(t.ID), clientv3.WithPrefix()),
			).Commit()
		if err != nil {
			return fmt.Errorf("coord: delete topic %q: %w", name, err)
		}
		if resp.Succeeded {
			c.log.Info("topic deleted", "topic", name, "id", t.ID)
			return nil
		}
		// Updated or re-created meanwhile: delete what is there now.
	}
}

// UpdateTopic applies fn to the stored topic and writes the result back if nobody changed the
// topic meanwhile, retrying otherwise. fn may run several times; its error is returned as is.
// fn must not change the name or the id.
func (c *Client) UpdateTopic(ctx context.Context, name string, fn func(*Topic) error) (Topic, error) {
	defer c.metrics.observeQuery(ctx, opUpdateTopic, time.Now())
	for {
		t, rev, err := c.getTopic(ctx, name)
		if err != nil {
			return Topic{}, err
		}
		id, created := t.ID, t.Revision
		if err := fn(&t); err != nil {
			return Topic{}, err
		}
		t.Revision = created
		if t.Name != name || t.ID != id {
			return Topic{}, fmt.Errorf("coord: update topic %q: name and id cannot change", name)
		}
		if err := validateTopic(t); err != nil {
			return Topic{}, err
		}
		val, err := json.Marshal(t)
		if err != nil {
			return Topic{}, fmt.Errorf("coord: encode topic %q: %w", name, err)
		}
		key := c.keys.topic(name)
		resp, err := c.etcd.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, string(val))).
			Commit()
		if err != nil {
			return Topic{}, fmt.Errorf("coord: update topic %q: %w", name, err)
		}
		if resp.Succeeded {
			return t, nil
		}
	}
}

// Topics lists every topic, sorted by name.
func (c *Client) Topics(ctx context.Context) ([]Topic, error) {
	defer c.metrics.observeQuery(ctx, opGetTopics, time.Now())
	resp, err := c.etcd.Get(ctx, c.keys.topics(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("coord: list topics: %w", err)
	}
	topics := make([]Topic, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs { // etcd returns keys sorted, so by name
		var t Topic
		if err := json.Unmarshal(kv.Value, &t); err != nil {
			c.log.Warn("skipping undecodable topic", "key", string(kv.Key), "error", err)
			continue
		}
		t.Revision = kv.CreateRevision
		topics = append(topics, t)
	}
	return topics, nil
}

// Agents lists the registered (live) agents, sorted by id.
func (c *Client) Agents(ctx context.Context) ([]AgentInfo, error) {
	defer c.metrics.observeQuery(ctx, opGetAgents, time.Now())
	resp, err := c.etcd.Get(ctx, c.keys.agents(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("coord: list agents: %w", err)
	}
	agents := make([]AgentInfo, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var a AgentInfo
		if err := json.Unmarshal(kv.Value, &a); err != nil {
			c.log.Warn("skipping undecodable agent", "key", string(kv.Key), "error", err)
			continue
		}
		agents = append(agents, a)
	}
	return agents, nil
}

// FirstProducerID is the first id AllocateProducerID hands out.
const FirstProducerID = 1000

// NextProducerID reads pid/next from etcd: the first producer id AllocateProducerID has not handed out.
func (c *Client) NextProducerID(ctx context.Context) (int64, error) {
	defer c.metrics.observeQuery(ctx, opNextPID, time.Now())
	resp, err := c.etcd.Get(ctx, c.keys.pidNext())
	if err != nil {
		return 0, fmt.Errorf("coord: read %s: %w", c.keys.pidNext(), err)
	}
	if len(resp.Kvs) == 0 {
		return FirstProducerID, nil
	}
	n, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("coord: bad %s: %w", c.keys.pidNext(), err)
	}
	return n, nil
}

// AllocateProducerID returns a producer id no other caller ever got: ids are dense from
// FirstProducerID, handed out by compare-and-swap on pid/next.
func (c *Client) AllocateProducerID(ctx context.Context) (int64, error) {
	defer c.metrics.observeQuery(ctx, opAllocatePID, time.Now())
	key := c.keys.pidNext()
	for {
		resp, err := c.etcd.Get(ctx, key)
		if err != nil {
			return 0, fmt.Errorf("coord: allocate producer id: %w", err)
		}
		next, rev := int64(FirstProducerID), int64(0)
		if len(resp.Kvs) > 0 {
			rev = resp.Kvs[0].ModRevision
			if next, err = strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64); err != nil {
				return 0, fmt.Errorf("coord: allocate producer id: bad %s: %w", key, err)
			}
		}
		txn, err := c.etcd.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, strconv.FormatInt(next+1, 10))).
			Commit()
		if err != nil {
			return 0, fmt.Errorf("coord: allocate producer id: %w", err)
		}
		if txn.Succeeded {
			return next, nil
		}
	}
}
