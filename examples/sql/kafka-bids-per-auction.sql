-- Bids from Kafka, counted per auction in 10-second event-time windows, upserted into a
-- compacted topic keyed by auction (Flink SQL, unchanged). Run: weir run examples/sql/kafka-bids-per-auction.sql
SET 'parallelism.default' = '2';
SET 'execution.checkpointing.interval' = '10s';

CREATE TABLE bids (
    auction BIGINT,
    bidder  BIGINT,
    price   BIGINT,
    ts_ms   BIGINT,
    ts AS TO_TIMESTAMP_LTZ(ts_ms, 3),
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (
    'connector' = 'kafka',
    'topic' = 'bids',
    'properties.bootstrap.servers' = 'localhost:9092',
    'properties.group.id' = 'bids-per-auction',
    'scan.startup.mode' = 'earliest-offset',
    'format' = 'json'
);

CREATE TABLE bids_per_auction (
    auction      BIGINT,
    window_start TIMESTAMP(3),
    bids         BIGINT,
    top_price    BIGINT,
    PRIMARY KEY (auction, window_start) NOT ENFORCED
) WITH (
    'connector' = 'upsert-kafka',
    'topic' = 'bids-per-auction',
    'properties.bootstrap.servers' = 'localhost:9092',
    'key.format' = 'json',
    'value.format' = 'json',
    'sink.delivery-guarantee' = 'exactly-once',
    'sink.transactional-id-prefix' = 'bids-per-auction'
);

INSERT INTO bids_per_auction
SELECT auction, window_start, COUNT(*) AS bids, MAX(price) AS top_price
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
