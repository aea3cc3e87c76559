// Command sarama is the IBM Sarama client program of Spate's end-to-end tests; it implements the
// commands of package common with Sarama's defaults (protocol version 2.8, hash partitioner,
// acks=1), as applications such as Dapr use it. The consumer reads partitions directly
// (ConsumePartition), so it needs no group coordinator.
package main

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/IBM/sarama"

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

func config() *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = "spate-e2e-sarama"
	c.Net.DialTimeout = common.RequestTimeout
	c.Net.ReadTimeout = common.RequestTimeout
	c.Net.WriteTimeout = common.RequestTimeout
	c.Admin.Timeout = common.RequestTimeout
	return c
}

func createTopic(a common.Args) {
	admin, err := sarama.NewClusterAdmin([]string{a.Bootstrap}, config())
	if err != nil {
		common.Fail("admin: %v", err)
	}
	defer admin.Close()
	entries := map[string]*string{}
	for k, v := range a.Configs {
		entries[k] = &v
	}
	detail := &sarama.TopicDetail{NumPartitions: int32(a.Partitions), ReplicationFactor: 1, ConfigEntries: entries}
	if err := admin.CreateTopic(a.Topic, detail, false); err != nil {
		common.Fail("create topic %s: %v", a.Topic, err)
	}
}

var codecs = map[string]sarama.CompressionCodec{
	"none":   sarama.CompressionNone,
	"gzip":   sarama.CompressionGZIP,
	"snappy": sarama.CompressionSnappy,
	"lz4":    sarama.CompressionLZ4,
	"zstd":   sarama.CompressionZSTD,
}

func produce(a common.Args) {
	records := common.ReadInput(a.Input)
	c := config()
	codec, ok := codecs[a.Codec]
	if !ok {
		common.Fail("unknown codec %q", a.Codec)
	}
	c.Producer.Compression = codec
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Flush.Frequency = 5 * time.Millisecond
	// One request in flight per broker keeps per-partition order even when a request is retried.
	c.Net.MaxOpenRequests = 1
	producer, err := sarama.NewAsyncProducer([]string{a.Bootstrap}, c)
	if err != nil {
		common.Fail("producer: %v", err)
	}
	type result struct {
		partition int32
		offset    int64
		err       error
	}
	results := make([]*result, len(records))
	done := make(chan struct{})
	go func() {
		for n := 0; n < len(records); n++ {
			select {
			case m := <-producer.Successes():
				results[m.Metadata.(int)] = &result{m.Partition, m.Offset, nil}
			case e := <-producer.Errors():
				results[e.Msg.Metadata.(int)] = &result{err: e.Err}
			}
		}
		close(done)
	}()
	for i, r := range records {
		msg := &sarama.ProducerMessage{Topic: a.Topic, Metadata: i}
		if r.Key != nil {
			msg.Key = sarama.ByteEncoder(r.Key)
		}
		if r.Value != nil {
			msg.Value = sarama.ByteEncoder(r.Value)
		}
		for _, h := range r.Headers {
			msg.Headers = append(msg.Headers, sarama.RecordHeader{Key: []byte(h.Name), Value: h.Value})
		}
		if r.Timestamp != nil {
			msg.Timestamp = time.UnixMilli(*r.Timestamp)
		}
		producer.Input() <- msg
	}
	select {
	case <-done:
	case <-time.After(common.RequestTimeout * 4):
		common.Fail("delivery reports did not all arrive")
	}
	producer.AsyncClose()
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

func partitionsOf(client sarama.Client, topic string) []int32 {
	ps, err := client.Partitions(topic)
	if err != nil {
		common.Fail("partitions of %s: %v", topic, err)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

func consume(a common.Args) {
	client, err := sarama.NewClient([]string{a.Bootstrap}, config())
	if err != nil {
		common.Fail("client: %v", err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		common.Fail("consumer: %v", err)
	}
	defer consumer.Close()
	messages := make(chan *sarama.ConsumerMessage, 1024)
	errors := make(chan error, 16)
	for _, p := range partitionsOf(client, a.Topic) {
		pc, err := consumer.ConsumePartition(a.Topic, p, sarama.OffsetOldest)
		if err != nil {
			common.Fail("consume partition %d: %v", p, err)
		}
		defer pc.AsyncClose()
		go func() {
			for m := range pc.Messages() {
				messages <- m
			}
		}()
		go func() {
			for e := range pc.Errors() {
				errors <- e
			}
		}()
	}
	out := common.Create(a.Out)
	deadline := time.After(a.Timeout)
	count := 0
	for count < a.Expect {
		select {
		case m := <-messages:
			var hs []common.Header
			for _, h := range m.Headers {
				hs = append(hs, common.Header{Name: string(h.Key), Value: h.Value})
			}
			line := common.Consumed(m.Partition, m.Offset, m.Key, m.Value, hs, m.Timestamp.UnixMilli(), false)
			// Sarama's ConsumerMessage does not say whether the timestamp is CreateTime or
			// LogAppendTime; the checker compares the value only.
			line.(map[string]any)["timestamp_type"] = "Unknown"
			out.Write(line)
			count++
		case e := <-errors:
			out.Close()
			common.Fail("consume: %v", e)
		case <-deadline:
			out.Close()
			common.Fail("consumed %d of %d records within %v", count, a.Expect, a.Timeout)
		}
	}
	out.Close()
}

func listOffsets(a common.Args) {
	client, err := sarama.NewClient([]string{a.Bootstrap}, config())
	if err != nil {
		common.Fail("client: %v", err)
	}
	defer client.Close()
	partitions := partitionsOf(client, a.Topic)
	var results []common.TimestampOffsets
	for _, ts := range a.Timestamps {
		found := common.TimestampOffsets{Timestamp: ts, Offsets: map[string]int64{}}
		for _, p := range partitions {
			// GetOffset passes the broker's answer through: -1 when no offset is at or after ts.
			offset, err := client.GetOffset(a.Topic, p, ts)
			if err != nil {
				common.Fail("offset of %s/%d at %d: %v", a.Topic, p, ts, err)
			}
			found.Offsets[strconv.Itoa(int(p))] = offset
		}
		results = append(results, found)
	}
	common.WriteJSON(a.Out, map[string]any{"results": results})
}

// sourceNames maps Sarama's ConfigSource to Kafka's names.
var sourceNames = map[sarama.ConfigSource]string{
	sarama.SourceUnknown:              "UNKNOWN",
	sarama.SourceTopic:                "DYNAMIC_TOPIC_CONFIG",
	sarama.SourceDynamicBroker:        "DYNAMIC_BROKER_CONFIG",
	sarama.SourceDynamicDefaultBroker: "DYNAMIC_DEFAULT_BROKER_CONFIG",
	sarama.SourceStaticBroker:         "STATIC_BROKER_CONFIG",
	sarama.SourceDefault:              "DEFAULT_CONFIG",
}

func describeConfigs(a common.Args) {
	admin, err := sarama.NewClusterAdmin([]string{a.Bootstrap}, config())
	if err != nil {
		common.Fail("admin: %v", err)
	}
	defer admin.Close()
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: a.Topic})
	if err != nil {
		common.Fail("describe configs: %v", err)
	}
	var configs []common.ConfigEntry
	for _, e := range entries {
		value := e.Value
		readOnly := e.ReadOnly
		configs = append(configs, common.ConfigEntry{
			Name:      e.Name,
			Value:     &value,
			Source:    sourceNames[e.Source],
			IsDefault: e.Default || e.Source == sarama.SourceDefault,
			ReadOnly:  &readOnly,
			Sensitive: e.Sensitive,
		})
	}
	sort.Slice(configs, func(i, j int) bool { return configs[i].Name < configs[j].Name })
	common.WriteJSON(a.Out, map[string]any{"configs": configs})
}
