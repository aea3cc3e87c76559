// Command groupmember is a consumer group member for Spate's group tests, on IBM Sarama or on
// franz-go (--library). Same flags and event lines as every group member program (see
// tests/clients/README.md, "Group members"): it subscribes, consumes, commits after every
// record batch, and leaves the group cleanly when the stop file appears.
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

// How often the stop file is looked for.
const stopPollInterval = 100 * time.Millisecond

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

type args struct {
	library, saramaVersion, bootstrap, group, out, stopFile, clientID, instanceID, assignor, protocol string
	sessionTimeoutMs                                                                                  int
	topics                                                                                            multi
}

// events writes one JSON object per line, flushed at once.
type events struct {
	mu sync.Mutex
	f  *os.File
}

func (e *events) write(event string, fields map[string]any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if fields == nil {
		fields = map[string]any{}
	}
	fields["event"] = event
	fields["ts"] = time.Now().UnixMilli()
	line, _ := json.Marshal(fields)
	e.f.Write(append(line, '\n'))
	e.f.Sync()
}

func partitionList(m map[string][]int32) [][]any {
	out := [][]any{}
	for t, ps := range m {
		for _, p := range ps {
			out = append(out, []any{t, p})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i][0].(string) != out[j][0].(string) {
			return out[i][0].(string) < out[j][0].(string)
		}
		return out[i][1].(int32) < out[j][1].(int32)
	})
	return out
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", a...)
	os.Exit(1)
}

func main() {
	var a args
	flag.StringVar(&a.library, "library", "sarama", "sarama or franzgo")
	flag.StringVar(&a.saramaVersion, "sarama-version", "2.0.0", "Kafka protocol version Sarama speaks")
	flag.StringVar(&a.bootstrap, "bootstrap", "", "")
	flag.StringVar(&a.group, "group", "", "")
	flag.StringVar(&a.out, "out", "", "")
	flag.StringVar(&a.stopFile, "stop-file", "", "")
	flag.StringVar(&a.clientID, "client-id", "group-member", "")
	flag.StringVar(&a.instanceID, "instance-id", "", "")
	flag.StringVar(&a.assignor, "assignor", "", "range, roundrobin, sticky or cooperative-sticky")
	flag.StringVar(&a.protocol, "protocol", "classic", "only classic is supported")
	flag.IntVar(&a.sessionTimeoutMs, "session-timeout-ms", 10000, "")
	flag.Var(&a.topics, "topic", "repeatable")
	flag.Parse()
	f, err := os.OpenFile(a.out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		fail("events file: %v", err)
	}
	ev := &events{f: f}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			if _, err := os.Stat(a.stopFile); err == nil {
				cancel()
				return
			}
			time.Sleep(stopPollInterval)
		}
	}()
	ev.write("started", map[string]any{"pid": os.Getpid()})
	switch a.library {
	case "sarama":
		runSarama(ctx, a, ev)
	case "franzgo":
		runFranz(ctx, a, ev)
	default:
		fail("unknown library %s", a.library)
	}
	ev.write("closed", nil)
}

// handler is Sarama's group handler: Setup and Cleanup bracket each generation's claims.
type handler struct{ ev *events }

func (h handler) Setup(s sarama.ConsumerGroupSession) error {
	h.ev.write("assigned", map[string]any{"partitions": partitionList(s.Claims())})
	return nil
}

func (h handler) Cleanup(s sarama.ConsumerGroupSession) error {
	h.ev.write("revoked", map[string]any{"partitions": partitionList(s.Claims())})
	return nil
}

func (h handler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	// Records are marked one by one and committed (synchronously) whenever the claim has no
	// more buffered records: after every batch, as the other member programs do.
	var next int64 = -1
	commit := func() {
		if next < 0 {
			return
		}
		s.Commit()
		h.ev.write("committed", map[string]any{"offsets": [][]any{{claim.Topic(), claim.Partition(), next}}})
		next = -1
	}
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				commit()
				return nil
			}
			var key any
			if msg.Key != nil {
				key = hex.EncodeToString(msg.Key)
			}
			h.ev.write("record", map[string]any{"topic": msg.Topic, "partition": msg.Partition, "offset": msg.Offset, "key": key})
			s.MarkMessage(msg, "")
			next = msg.Offset + 1
			if len(claim.Messages()) == 0 {
				commit()
			}
		case <-s.Context().Done():
			commit()
			return nil
		}
	}
}

func runSarama(ctx context.Context, a args, ev *events) {
	c := sarama.NewConfig()
	version, err := sarama.ParseKafkaVersion(a.saramaVersion)
	if err != nil {
		fail("sarama version: %v", err)
	}
	c.Version = version
	c.ClientID = a.clientID
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	// Commits happen synchronously after every record (Commit), not on a timer.
	c.Consumer.Offsets.AutoCommit.Enable = false
	c.Consumer.Group.Session.Timeout = time.Duration(a.sessionTimeoutMs) * time.Millisecond
	c.Consumer.Group.Heartbeat.Interval = time.Duration(max(a.sessionTimeoutMs/10, 100)) * time.Millisecond
	if a.instanceID != "" {
		c.Consumer.Group.InstanceId = a.instanceID
	}
	switch a.assignor {
	case "", "range":
		c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	case "roundrobin":
		c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRoundRobin()}
	case "sticky":
		c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategySticky()}
	default:
		fail("sarama has no assignor %s", a.assignor)
	}
	group, err := sarama.NewConsumerGroup([]string{a.bootstrap}, a.group, c)
	if err != nil {
		fail("consumer group: %v", err)
	}
	go func() {
		for err := range group.Errors() {
			ev.write("error", map[string]any{"error": err.Error()})
		}
	}()
	for ctx.Err() == nil {
		if err := group.Consume(ctx, a.topics, handler{ev}); err != nil && ctx.Err() == nil {
			ev.write("error", map[string]any{"error": err.Error()})
			time.Sleep(200 * time.Millisecond)
		}
	}
	if err := group.Close(); err != nil {
		fail("close: %v", err)
	}
}

func runFranz(ctx context.Context, a args, ev *events) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(a.bootstrap),
		kgo.ClientID(a.clientID),
		kgo.ConsumerGroup(a.group),
		kgo.ConsumeTopics(a.topics...),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(time.Duration(a.sessionTimeoutMs) * time.Millisecond),
		kgo.HeartbeatInterval(time.Duration(max(a.sessionTimeoutMs/10, 100)) * time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			ev.write("assigned", map[string]any{"partitions": partitionList(m)})
		}),
		// Everything polled is committed before the next poll, and BlockRebalanceOnPoll keeps
		// a rebalance from landing in between, so nothing is left to commit on revoke.
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			ev.write("revoked", map[string]any{"partitions": partitionList(m)})
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			ev.write("lost", map[string]any{"partitions": partitionList(m)})
		}),
		kgo.BlockRebalanceOnPoll(),
	}
	if a.instanceID != "" {
		opts = append(opts, kgo.InstanceID(a.instanceID))
	}
	switch a.assignor {
	case "":
	case "range":
		opts = append(opts, kgo.Balancers(kgo.RangeBalancer()))
	case "roundrobin":
		opts = append(opts, kgo.Balancers(kgo.RoundRobinBalancer()))
	case "sticky":
		opts = append(opts, kgo.Balancers(kgo.StickyBalancer()))
	case "cooperative-sticky":
		opts = append(opts, kgo.Balancers(kgo.CooperativeStickyBalancer()))
	default:
		fail("franz-go has no assignor %s", a.assignor)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		fail("client: %v", err)
	}
	for ctx.Err() == nil {
		pollCtx, pollCancel := context.WithTimeout(ctx, 200*time.Millisecond)
		fetches := cl.PollFetches(pollCtx)
		pollCancel()
		type tp struct {
			t string
			p int32
		}
		positions := map[tp]int64{}
		var polled []*kgo.Record
		fetches.EachError(func(t string, p int32, err error) {
			if err != context.DeadlineExceeded && err != context.Canceled {
				ev.write("error", map[string]any{"error": fmt.Sprintf("%s-%d: %v", t, p, err)})
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			var key any
			if r.Key != nil {
				key = hex.EncodeToString(r.Key)
			}
			ev.write("record", map[string]any{"topic": r.Topic, "partition": r.Partition, "offset": r.Offset, "key": key})
			polled = append(polled, r)
			positions[tp{r.Topic, r.Partition}] = r.Offset + 1
		})
		if len(positions) > 0 {
			commitCtx, commitCancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := cl.CommitRecords(commitCtx, polled...)
			commitCancel()
			if err != nil {
				ev.write("commit_failed", map[string]any{"error": err.Error()})
			} else {
				offsets := [][]any{}
				for k, o := range positions {
					offsets = append(offsets, []any{k.t, k.p, o})
				}
				ev.write("committed", map[string]any{"offsets": offsets})
			}
		}
		cl.AllowRebalance()
	}
	cl.Close()
}
