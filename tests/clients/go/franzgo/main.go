// Command franzgo is the franz-go (kgo + kadm) client program of Spate's end-to-end tests; it
// implements the commands of package common. The consumer assigns partitions directly
// (ConsumePartitions), so it needs no group coordinator.
package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"spate.dev/e2e/clients/common"
)

func main() {
	a := common.Parse()
	switch a.Command {
	case "create-topic":
		createTopic(a)
	case "produce":
		produce(a)
	case "consume":
		consume(a)
	case "list-offsets":
		listOffsets(a)
	case "describe-configs":
		describeConfigs(a)
	}
}

func newClient(a common.Args, opts ...kgo.Opt) *kgo.Client {
	opts = append([]kgo.Opt{kgo.SeedBrokers(a.Bootstrap), kgo.RequestTimeoutOverhead(common.RequestTimeout)}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		common.Fail("new client: %v", err)
	}
	return cl
}

func timeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), common.RequestTimeout)
}

func createTopic(a common.Args) {
	cl := newClient(a)
	defer cl.Close()
	configs := map[string]*string{}
	for k, v := range a.Configs {
		configs[k] = &v
	}
	ctx, cancel := timeout()
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(a.Partitions), 1, configs, a.Topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		common.Fail("create topic %s: %v", a.Topic, err)
	}
}

func codec(name string) kgo.CompressionCodec {
	switch name {
	case "none":
		return kgo.NoCompression()
	case "gzip":
		return kgo.GzipCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	common.Fail("unknown codec %q", name)
	return kgo.NoCompression()
}

func produce(a common.Args) {
	records := common.ReadInput(a.Input)
	// franz-go is idempotent by default, which also keeps per-partition order.
	cl := newClient(a, kgo.ProducerBatchCompression(codec(a.Codec)), kgo.ProducerLinger(5*time.Millisecond))
	defer cl.Close()
	type result struct {
		partition int32
		offset    int64
		err       error
	}
	results := make([]result, len(records))
	var wg sync.WaitGroup
	ctx := context.Background()
	for i, r := range records {
		rec := &kgo.Record{Topic: a.Topic, Key: r.Key, Value: r.Value}
		for _, h := range r.Headers {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h.Name, Value: h.Value})
		}
		if r.Timestamp != nil {
			rec.Timestamp = time.UnixMilli(*r.Timestamp)
		}
		wg.Add(1)
		index := i
		cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
			results[index] = result{r.Partition, r.Offset, err}
			wg.Done()
		})
	}
	flushCtx, cancel := timeout()
	defer cancel()
	if err := cl.Flush(flushCtx); err != nil {
		common.Fail("flush: %v", err)
	}
	wg.Wait()
	out := common.Create(a.Out)
	var errs []string
	for i, r := range results {
		if r.err != nil {
			errs = append(errs, fmt.Sprintf("record %d: %v", i, r.err))
			continue
		}
		out.Write(common.Produced(i, r.partition, r.offset))
	}
	out.Close()
	if len(errs) > 0 {
		if len(errs) > 10 {
			errs = errs[:10]
		}
		common.Fail("produce failed: %v", errs)
	}
}

func partitionsOf(cl *kgo.Client, topic string) []int32 {
	ctx, cancel := timeout()
	defer cancel()
	details, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		common.Fail("metadata: %v", err)
	}
	td, ok := details[topic]
	if !ok || td.Err != nil {
		common.Fail("topic %s not in metadata: %v", topic, td.Err)
	}
	var ps []int32
	for p := range td.Partitions {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

func consume(a common.Args) {
	meta := newClient(a)
	partitions := partitionsOf(meta, a.Topic)
	meta.Close()
	offsets := map[int32]kgo.Offset{}
	for _, p := range partitions {
		offsets[p] = kgo.NewOffset().AtStart()
	}
	cl := newClient(a, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{a.Topic: offsets}))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), a.Timeout)
	defer cancel()
	out := common.Create(a.Out)
	count := 0
	for count < a.Expect {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		for _, fe := range fetches.Errors() {
			out.Close()
			common.Fail("fetch %s/%d: %v", fe.Topic, fe.Partition, fe.Err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			var hs []common.Header
			for _, h := range r.Headers {
				hs = append(hs, common.Header{Name: h.Key, Value: h.Value})
			}
			out.Write(common.Consumed(r.Partition, r.Offset, r.Key, r.Value, hs, r.Timestamp.UnixMilli(),
				r.Attrs.TimestampType() == 1))
			count++
		})
	}
	out.Close()
	if count < a.Expect {
		common.Fail("consumed %d of %d records within %v", count, a.Expect, a.Timeout)
	}
}

// listOffsets sends ListOffsets by timestamp itself (kmsg through the kgo client, which routes
// each partition to its leader) because kadm.ListOffsetsAfterMilli replaces "no such offset"
// with the end offset, and the test checks the broker's own answer.
func listOffsets(a common.Args) {
	cl := newClient(a)
	defer cl.Close()
	partitions := partitionsOf(cl, a.Topic)
	var results []common.TimestampOffsets
	for _, ts := range a.Timestamps {
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		t := kmsg.NewListOffsetsRequestTopic()
		t.Topic = a.Topic
		for _, p := range partitions {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = p
			rp.Timestamp = ts
			rp.CurrentLeaderEpoch = -1
			t.Partitions = append(t.Partitions, rp)
		}
		req.Topics = append(req.Topics, t)
		ctx, cancel := timeout()
		shards := cl.RequestSharded(ctx, req)
		cancel()
		found := common.TimestampOffsets{Timestamp: ts, Offsets: map[string]int64{}}
		for _, shard := range shards {
			if shard.Err != nil {
				common.Fail("list offsets: %v", shard.Err)
			}
			resp := shard.Resp.(*kmsg.ListOffsetsResponse)
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
						common.Fail("list offsets %s/%d: %v", rt.Topic, rp.Partition, err)
					}
					found.Offsets[strconv.Itoa(int(rp.Partition))] = rp.Offset
				}
			}
		}
		results = append(results, found)
	}
	common.WriteJSON(a.Out, map[string]any{"results": results})
}

func describeConfigs(a common.Args) {
	cl := newClient(a)
	defer cl.Close()
	ctx, cancel := timeout()
	defer cancel()
	described, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, a.Topic)
	if err != nil {
		common.Fail("describe configs: %v", err)
	}
	rc, err := described.On(a.Topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			common.Fail("describe configs: topic %s unknown", a.Topic)
		}
		common.Fail("describe configs: %v", err)
	}
	var configs []common.ConfigEntry
	for _, c := range rc.Configs {
		configs = append(configs, common.ConfigEntry{
			Name:      c.Key,
			Value:     c.Value,
			Source:    c.Source.String(),
			IsDefault: c.Source == kmsg.ConfigSourceDefaultConfig,
			Sensitive: c.Sensitive,
		})
	}
	sort.Slice(configs, func(i, j int) bool { return configs[i].Name < configs[j].Name })
	common.WriteJSON(a.Out, map[string]any{"configs": configs})
}
