package io.spate.e2e;

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The Java client program (org.apache.kafka:kafka-clients) of Spate's end-to-end tests: the same
 * five commands and file formats as every other client program (see tests/clients/README.md).
 * Bytes travel hex-encoded. The consumer uses assign() without group.id, so it needs no group
 * coordinator. The producer keeps the client's defaults (idempotence on, acks=all).
 */
public final class Client {
    /** Bound on any single admin or metadata call, so a broken broker fails instead of hanging. */
    private static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(30);
    /** How long `consume` waits for the expected records unless told otherwise. */
    private static final long DEFAULT_CONSUME_TIMEOUT_MS = 60_000;
    private static final HexFormat HEX = HexFormat.of();

    private Client() {}

    public static void main(String[] argv) throws Exception {
        if (argv.length < 1) {
            fail("usage: Client create-topic|produce|consume|list-offsets|describe-configs [--flag value]...");
        }
        Args args = Args.parse(argv);
        switch (args.command) {
            case "create-topic" -> createTopic(args);
            case "produce" -> produce(args);
            case "consume" -> consume(args);
            case "list-offsets" -> listOffsets(args);
            case "describe-configs" -> describeConfigs(args);
            default -> fail("unknown command " + args.command);
        }
        System.exit(0);
    }

    static void fail(String message) {
        System.err.println(message);
        System.exit(1);
    }

    /** `--flag value` pairs; --config and --timestamp repeat. */
    static final class Args {
        String command;
        final Map<String, String> single = new HashMap<>();
        final List<String> configs = new ArrayList<>();
        final List<Long> timestamps = new ArrayList<>();

        static Args parse(String[] argv) {
            Args a = new Args();
            a.command = argv[0];
            for (int i = 1; i < argv.length; i += 2) {
                if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
                    fail("bad argument " + argv[i]);
                }
                String name = argv[i].substring(2);
                String value = argv[i + 1];
                switch (name) {
                    case "config" -> a.configs.add(value);
                    case "timestamp" -> a.timestamps.add(Long.parseLong(value));
                    default -> a.single.put(name, value);
                }
            }
            return a;
        }

        String get(String name) {
            String v = single.get(name);
            if (v == null) {
                fail("--" + name + " is required");
            }
            return v;
        }
    }

    static Properties common(Args a) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, a.get("bootstrap"));
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, (int) REQUEST_TIMEOUT.toMillis());
        return p;
    }

    static void createTopic(Args a) throws Exception {
        Map<String, String> configs = new HashMap<>();
        for (String kv : a.configs) {
            int at = kv.indexOf('=');
            if (at < 0) {
                fail("--config expects KEY=VALUE, got " + kv);
            }
            configs.put(kv.substring(0, at), kv.substring(at + 1));
        }
        try (Admin admin = Admin.create(common(a))) {
            NewTopic topic = new NewTopic(a.get("topic"), Integer.parseInt(a.get("partitions")), (short) 1)
                    .configs(configs);
            admin.createTopics(List.of(topic)).all().get(REQUEST_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        }
    }

    static void produce(Args a) throws Exception {
        List<InputRecord> records = InputRecord.readAll(Path.of(a.get("input")));
        Properties p = common(a);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, a.get("codec"));
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        // Give up on a record after 60 s (default 120 s), inside the harness's bound on a run;
        // it must exceed linger.ms + request.timeout.ms.
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60_000);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, (int) REQUEST_TIMEOUT.toMillis());
        RecordMetadata[] delivered = new RecordMetadata[records.size()];
        AtomicReference<Exception> error = new AtomicReference<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            String topic = a.get("topic");
            for (int i = 0; i < records.size(); i++) {
                InputRecord r = records.get(i);
                List<Header> headers = new ArrayList<>();
                for (Map.Entry<String, byte[]> h : r.headers) {
                    headers.add(new RecordHeader(h.getKey(), h.getValue()));
                }
                int index = i;
                producer.send(new ProducerRecord<>(topic, null, r.timestamp, r.key, r.value, headers),
                        (metadata, e) -> {
                            if (e != null) {
                                error.compareAndSet(null, new Exception("record " + index + ": " + e, e));
                            } else {
                                delivered[index] = metadata;
                            }
                        });
            }
            producer.flush();
        }
        try (BufferedWriter out = Files.newBufferedWriter(Path.of(a.get("out")), StandardCharsets.UTF_8)) {
            for (int i = 0; i < delivered.length; i++) {
                if (delivered[i] != null) {
                    out.write("{\"index\":" + i + ",\"partition\":" + delivered[i].partition()
                            + ",\"offset\":" + delivered[i].offset() + "}\n");
                }
            }
        }
        if (error.get() != null) {
            fail("produce failed: " + error.get().getMessage());
        }
    }

    static KafkaConsumer<byte[], byte[]> consumer(Args a) {
        Properties p = common(a);
        // No group.id: assign() with explicit offsets needs no group coordinator.
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        return new KafkaConsumer<>(p);
    }

    static List<TopicPartition> partitions(KafkaConsumer<byte[], byte[]> consumer, String topic) {
        List<PartitionInfo> infos = consumer.partitionsFor(topic, REQUEST_TIMEOUT);
        if (infos == null || infos.isEmpty()) {
            fail("topic " + topic + " not in metadata");
        }
        List<TopicPartition> tps = new ArrayList<>();
        for (PartitionInfo info : infos) {
            tps.add(new TopicPartition(topic, info.partition()));
        }
        tps.sort((x, y) -> Integer.compare(x.partition(), y.partition()));
        return tps;
    }

    static void consume(Args a) throws IOException {
        long expect = Long.parseLong(a.get("expect"));
        long timeoutMs = a.single.containsKey("timeout-ms")
                ? Long.parseLong(a.get("timeout-ms")) : DEFAULT_CONSUME_TIMEOUT_MS;
        long count = 0;
        try (KafkaConsumer<byte[], byte[]> consumer = consumer(a);
                BufferedWriter out = Files.newBufferedWriter(Path.of(a.get("out")), StandardCharsets.UTF_8)) {
            List<TopicPartition> tps = partitions(consumer, a.get("topic"));
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
            while (count < expect && System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    StringBuilder line = new StringBuilder(256);
                    line.append("{\"partition\":").append(r.partition())
                            .append(",\"offset\":").append(r.offset())
                            .append(",\"key\":").append(hexOrNull(r.key()))
                            .append(",\"value\":").append(hexOrNull(r.value()))
                            .append(",\"headers\":[");
                    boolean first = true;
                    for (Header h : r.headers()) {
                        if (!first) {
                            line.append(',');
                        }
                        first = false;
                        line.append('[').append(jsonString(h.key())).append(',')
                                .append(hexOrNull(h.value())).append(']');
                    }
                    line.append("],\"timestamp\":").append(r.timestamp())
                            .append(",\"timestamp_type\":\"")
                            .append(r.timestampType() == TimestampType.LOG_APPEND_TIME ? "LogAppendTime" : "CreateTime")
                            .append("\"}\n");
                    out.write(line.toString());
                    count++;
                }
            }
        }
        if (count < expect) {
            fail("consumed " + count + " of " + expect + " records within " + timeoutMs + " ms");
        }
    }

    static void listOffsets(Args a) throws IOException {
        StringBuilder json = new StringBuilder("{\"results\":[");
        try (KafkaConsumer<byte[], byte[]> consumer = consumer(a)) {
            List<TopicPartition> tps = partitions(consumer, a.get("topic"));
            for (int t = 0; t < a.timestamps.size(); t++) {
                long ts = a.timestamps.get(t);
                Map<TopicPartition, Long> query = new LinkedHashMap<>();
                for (TopicPartition tp : tps) {
                    query.put(tp, ts);
                }
                Map<TopicPartition, OffsetAndTimestamp> found = consumer.offsetsForTimes(query, REQUEST_TIMEOUT);
                json.append(t == 0 ? "" : ",").append("{\"timestamp\":").append(ts).append(",\"offsets\":{");
                for (int i = 0; i < tps.size(); i++) {
                    OffsetAndTimestamp o = found.get(tps.get(i));
                    // The Java consumer reports "no offset at or after this timestamp" as null.
                    json.append(i == 0 ? "" : ",").append('"').append(tps.get(i).partition()).append("\":")
                            .append(o == null ? -1 : o.offset());
                }
                json.append("}}");
            }
        }
        json.append("]}\n");
        Files.writeString(Path.of(a.get("out")), json.toString());
    }

    static void describeConfigs(Args a) throws Exception {
        ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, a.get("topic"));
        Config config;
        try (Admin admin = Admin.create(common(a))) {
            config = admin.describeConfigs(List.of(resource)).all()
                    .get(REQUEST_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS).get(resource);
        }
        TreeMap<String, ConfigEntry> sorted = new TreeMap<>();
        for (ConfigEntry e : config.entries()) {
            sorted.put(e.name(), e);
        }
        StringBuilder json = new StringBuilder("{\"configs\":[");
        boolean first = true;
        for (ConfigEntry e : sorted.values()) {
            json.append(first ? "\n" : ",\n");
            first = false;
            json.append("{\"name\":").append(jsonString(e.name()))
                    .append(",\"value\":").append(e.value() == null ? "null" : jsonString(e.value()))
                    .append(",\"source\":\"").append(e.source().name()).append('"')
                    .append(",\"is_default\":").append(e.isDefault())
                    .append(",\"read_only\":").append(e.isReadOnly())
                    .append(",\"sensitive\":").append(e.isSensitive())
                    .append('}');
        }
        json.append("]}\n");
        Files.writeString(Path.of(a.get("out")), json.toString());
    }

    static String hexOrNull(byte[] bytes) {
        return bytes == null ? "null" : "\"" + HEX.formatHex(bytes) + "\"";
    }

    static String jsonString(String s) {
        StringBuilder b = new StringBuilder(s.length() + 2).append('"');
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }

    /** One record of the input file. */
    static final class InputRecord {
        byte[] key;
        byte[] value;
        final List<Map.Entry<String, byte[]>> headers = new ArrayList<>();
        Long timestamp;

        static List<InputRecord> readAll(Path path) throws IOException {
            List<InputRecord> records = new ArrayList<>();
            for (String line : Files.readAllLines(path, StandardCharsets.UTF_8)) {
                if (line.isBlank()) {
                    continue;
                }
                Object parsed = new Json(line).value();
                if (!(parsed instanceof Map<?, ?> m)) {
                    throw new IOException("input line is not an object: " + line);
                }
                InputRecord r = new InputRecord();
                r.key = unhex(m.get("key"));
                r.value = unhex(m.get("value"));
                if (m.get("timestamp") instanceof Long ts) {
                    r.timestamp = ts;
                }
                if (m.get("headers") instanceof List<?> hs) {
                    for (Object h : hs) {
                        List<?> pair = (List<?>) h;
                        r.headers.add(Map.entry((String) pair.get(0), nullSafe(unhex(pair.get(1)))));
                    }
                }
                records.add(r);
            }
            return records;
        }

        // Map.entry refuses null values; a null header value is not produced by the generator.
        private static byte[] nullSafe(byte[] b) {
            if (b == null) {
                throw new IllegalArgumentException("null header values are not supported in input");
            }
            return b;
        }

        private static byte[] unhex(Object o) {
            return o == null ? null : HEX.parseHex((String) o);
        }
    }

    /** The smallest JSON reader the input format needs: objects, arrays, strings, integers, null. */
    static final class Json {
        private final String s;
        private int i;

        Json(String s) {
            this.s = s;
        }

        Object value() {
            skip();
            char c = s.charAt(i);
            switch (c) {
                case '{' -> {
                    Map<String, Object> m = new LinkedHashMap<>();
                    i++;
                    skip();
                    if (s.charAt(i) == '}') {
                        i++;
                        return m;
                    }
                    while (true) {
                        skip();
                        String k = string();
                        skip();
                        expect(':');
                        m.put(k, value());
                        skip();
                        if (s.charAt(i) == ',') {
                            i++;
                            continue;
                        }
                        expect('}');
                        return m;
                    }
                }
                case '[' -> {
                    List<Object> l = new ArrayList<>();
                    i++;
                    skip();
                    if (s.charAt(i) == ']') {
                        i++;
                        return l;
                    }
                    while (true) {
                        l.add(value());
                        skip();
                        if (s.charAt(i) == ',') {
                            i++;
                            continue;
                        }
                        expect(']');
                        return l;
                    }
                }
                case '"' -> {
                    return string();
                }
                case 'n' -> {
                    i += 4;
                    return null;
                }
                default -> {
                    int start = i;
                    while (i < s.length() && (Character.isDigit(s.charAt(i)) || s.charAt(i) == '-')) {
                        i++;
                    }
                    return Long.parseLong(s.substring(start, i));
                }
            }
        }

        private String string() {
            expect('"');
            StringBuilder b = new StringBuilder();
            while (s.charAt(i) != '"') {
                char c = s.charAt(i++);
                if (c == '\\') {
                    char e = s.charAt(i++);
                    switch (e) {
                        case 'n' -> b.append('\n');
                        case 't' -> b.append('\t');
                        case 'r' -> b.append('\r');
                        case 'b' -> b.append('\b');
                        case 'f' -> b.append('\f');
                        case 'u' -> {
                            b.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                            i += 4;
                        }
                        default -> b.append(e);
                    }
                } else {
                    b.append(c);
                }
            }
            i++;
            return b.toString();
        }

        private void expect(char c) {
            if (s.charAt(i) != c) {
                throw new IllegalArgumentException("expected '" + c + "' at " + i + " in " + s);
            }
            i++;
        }

        private void skip() {
            while (i < s.length() && Character.isWhitespace(s.charAt(i))) {
                i++;
            }
        }
    }
}
