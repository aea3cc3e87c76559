// Package common is the command-line interface shared by the Go client programs of Spate's
// end-to-end tests: the same five commands and file formats as every other client program
// (see tests/clients/README.md). Bytes travel hex-encoded, so keys, values and header values
// can be arbitrary binary.
package common

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// DefaultConsumeTimeout bounds how long consume waits for the expected records.
const DefaultConsumeTimeout = 60 * time.Second

// RequestTimeout bounds any single admin, metadata or produce call, so a broken broker fails the
// test instead of hanging it.
const RequestTimeout = 30 * time.Second

// Header is one record header; a nil Value is a null header value.
type Header struct {
	Name  string
	Value []byte
}

// Record is one record to produce, as read from the input file.
type Record struct {
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp *int64
}

// Args holds the parsed command line of any command.
type Args struct {
	Command    string
	Bootstrap  string
	Topic      string
	Partitions int
	Configs    map[string]string
	Input      string
	Codec      string
	Out        string
	Expect     int
	Timeout    time.Duration
	Timestamps []int64
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// Parse parses os.Args: `<program> <command> --flag value ...`.
func Parse() Args {
	if len(os.Args) < 2 {
		Fail("usage: %s create-topic|produce|consume|list-offsets|describe-configs [flags]", os.Args[0])
	}
	a := Args{Command: os.Args[1], Configs: map[string]string{}}
	fs := flag.NewFlagSet(a.Command, flag.ExitOnError)
	fs.StringVar(&a.Bootstrap, "bootstrap", "", "bootstrap address")
	fs.StringVar(&a.Topic, "topic", "", "topic")
	var configs, timestamps multi
	timeoutMs := int(DefaultConsumeTimeout / time.Millisecond)
	switch a.Command {
	case "create-topic":
		fs.IntVar(&a.Partitions, "partitions", 0, "partition count")
		fs.Var(&configs, "config", "KEY=VALUE, repeatable")
	case "produce":
		fs.StringVar(&a.Input, "input", "", "input JSONL")
		fs.StringVar(&a.Codec, "codec", "", "none|gzip|snappy|lz4|zstd")
		fs.StringVar(&a.Out, "out", "", "produced JSONL")
	case "consume":
		fs.IntVar(&a.Expect, "expect", 0, "records to consume")
		fs.StringVar(&a.Out, "out", "", "consumed JSONL")
		fs.IntVar(&timeoutMs, "timeout-ms", timeoutMs, "give up after this many milliseconds")
	case "list-offsets":
		fs.Var(&timestamps, "timestamp", "timestamp in ms, repeatable")
		fs.StringVar(&a.Out, "out", "", "output JSON")
	case "describe-configs":
		fs.StringVar(&a.Out, "out", "", "output JSON")
	default:
		Fail("unknown command %q", a.Command)
	}
	if err := fs.Parse(os.Args[2:]); err != nil {
		Fail("%v", err)
	}
	a.Timeout = time.Duration(timeoutMs) * time.Millisecond
	if a.Bootstrap == "" || a.Topic == "" {
		Fail("--bootstrap and --topic are required")
	}
	for _, kv := range configs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			Fail("--config expects KEY=VALUE, got %q", kv)
		}
		a.Configs[k] = v
	}
	for _, t := range timestamps {
		var ts int64
		if _, err := fmt.Sscan(t, &ts); err != nil {
			Fail("--timestamp %q: %v", t, err)
		}
		a.Timestamps = append(a.Timestamps, ts)
	}
	return a
}

// Fail prints the message to stderr and exits non-zero.
func Fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func toHex(b []byte) *string {
	if b == nil {
		return nil
	}
	s := hex.EncodeToString(b)
	return &s
}

func fromHex(s *string) []byte {
	if s == nil {
		return nil
	}
	b, err := hex.DecodeString(*s)
	if err != nil {
		Fail("bad hex in input: %v", err)
	}
	return b
}

// ReadInput reads the records to produce, in order.
func ReadInput(path string) []Record {
	f, err := os.Open(path)
	if err != nil {
		Fail("open input: %v", err)
	}
	defer f.Close()
	var records []Record
	scanner := bufio.NewScanner(f)
	// A record line holds a hex value of up to a few hundred KiB.
	scanner.Buffer(make([]byte, 1<<20), 64<<20)
	for scanner.Scan() {
		line := scanner.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		var raw struct {
			Key       *string      `json:"key"`
			Value     *string      `json:"value"`
			Headers   [][2]*string `json:"headers"`
			Timestamp *int64       `json:"timestamp"`
		}
		if err := json.Unmarshal(line, &raw); err != nil {
			Fail("bad input line: %v", err)
		}
		r := Record{Key: fromHex(raw.Key), Value: fromHex(raw.Value), Timestamp: raw.Timestamp}
		// A non-null value that is empty must stay a non-nil empty slice.
		if raw.Value != nil && r.Value == nil {
			r.Value = []byte{}
		}
		if raw.Key != nil && r.Key == nil {
			r.Key = []byte{}
		}
		for _, h := range raw.Headers {
			if h[0] == nil {
				Fail("header without a name in input")
			}
			v := fromHex(h[1])
			if h[1] != nil && v == nil {
				v = []byte{}
			}
			r.Headers = append(r.Headers, Header{Name: *h[0], Value: v})
		}
		records = append(records, r)
	}
	if err := scanner.Err(); err != nil {
		Fail("read input: %v", err)
	}
	return records
}

// Lines writes JSON lines to a file.
type Lines struct {
	f *os.File
	w *bufio.Writer
}

// Create opens the output file for JSON lines.
func Create(path string) *Lines {
	f, err := os.Create(path)
	if err != nil {
		Fail("create %s: %v", path, err)
	}
	return &Lines{f: f, w: bufio.NewWriter(f)}
}

// Write appends one JSON value as a line.
func (l *Lines) Write(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		Fail("encode: %v", err)
	}
	l.w.Write(b)
	l.w.WriteByte('\n')
}

// Close flushes and closes the file.
func (l *Lines) Close() {
	if err := l.w.Flush(); err != nil {
		Fail("write: %v", err)
	}
	if err := l.f.Close(); err != nil {
		Fail("close: %v", err)
	}
}

// Produced is one delivery report.
func Produced(index int, partition int32, offset int64) any {
	return map[string]any{"index": index, "partition": partition, "offset": offset}
}

// Consumed is one consumed record.
func Consumed(partition int32, offset int64, key, value []byte, headers []Header, timestamp int64, logAppendTime bool) any {
	hs := make([][2]*string, 0, len(headers))
	for _, h := range headers {
		name := h.Name
		hs = append(hs, [2]*string{&name, toHex(h.Value)})
	}
	tsType := "CreateTime"
	if logAppendTime {
		tsType = "LogAppendTime"
	}
	return map[string]any{
		"partition":      partition,
		"offset":         offset,
		"key":            toHex(key),
		"value":          toHex(value),
		"headers":        hs,
		"timestamp":      timestamp,
		"timestamp_type": tsType,
	}
}

// TimestampOffsets is the list-offsets answer for one timestamp: partition -> offset, -1 for none.
type TimestampOffsets struct {
	Timestamp int64            `json:"timestamp"`
	Offsets   map[string]int64 `json:"offsets"`
}

// ConfigEntry is one described topic config, with Kafka's source names (DEFAULT_CONFIG, ...).
type ConfigEntry struct {
	Name      string  `json:"name"`
	Value     *string `json:"value"`
	Source    string  `json:"source"`
	IsDefault bool    `json:"is_default"`
	ReadOnly  *bool   `json:"read_only"` // nil when the client API does not report it
	Sensitive bool    `json:"sensitive"`
}

// WriteJSON writes one JSON document to a file.
func WriteJSON(path string, v any) {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		Fail("encode: %v", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		Fail("write %s: %v", path, err)
	}
}
