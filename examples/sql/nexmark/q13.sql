-- q13: bounded side input join. Each bid joined, as it arrives, with the row of a fixed side
-- table whose key is the bid's auction modulo 10,000 (a lookup join against a file read whole
-- and kept in memory; ${SIDE_INPUT} is the path of side_input.csv beside this file).
CREATE TEMPORARY TABLE side_input (
    key BIGINT,
    `value` VARCHAR
) WITH (
    'connector' = 'filesystem',
    'path' = '${SIDE_INPUT}',
    'format' = 'csv'
);

CREATE TEMPORARY TABLE nexmark_q13 (
    auction BIGINT,
    bidder BIGINT,
    price BIGINT,
    `dateTime` TIMESTAMP(3),
    `value` VARCHAR
) WITH ('connector' = 'blackhole');

INSERT INTO nexmark_q13
SELECT B.auction, B.bidder, B.price, B.`dateTime`, S.`value`
FROM (SELECT *, PROCTIME() AS p_time FROM bid) AS B
JOIN side_input FOR SYSTEM_TIME AS OF B.p_time AS S
ON MOD(B.auction, 10000) = S.key;
