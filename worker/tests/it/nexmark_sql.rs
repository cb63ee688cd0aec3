//! Nexmark q13–q22 from their Flink SQL files (`examples/sql/nexmark/`), each run unchanged
//! through the `weir` binary at parallelism 1, 2 and 4, its final table equal to one computed
//! here from the generator's model. The events span two days (from 18:00, one per second), so
//! the per-day and part-of-day columns take several values.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde_json::{Value, json};
use weir::connectors::nexmark::model::{AUCTION, BID, Event, NexmarkModel};

use crate::common::timed::millis;
use crate::common::{final_table, run_printed};

const EVENTS: i64 = 50_000;
/// One event per second: about 14 hours of event time.
const RATE: i64 = 1;
/// 2024-01-01T18:00:00Z.
const BASE: i64 = 1_704_132_000_000;

/// The query file `q` after the DDL, with what its runner fills in, printing its rows.
fn job(q: &str, parallelism: usize) -> String {
    let text = crate::common::nexmark_sql(q, EVENTS, RATE, BASE);
    format!("SET 'parallelism.default' = '{parallelism}';\n{text}")
        .replace("'connector' = 'blackhole'", "'connector' = 'print'")
}

struct Bid {
    auction: i64,
    bidder: i64,
    price: i64,
    channel: String,
    url: String,
    t: i64,
    extra: String,
}

struct Auction {
    item_name: String,
    seller: i64,
    category: i64,
}

/// The model's bids, and its auctions by id.
fn model() -> (Vec<Bid>, HashMap<i64, Auction>) {
    let model = NexmarkModel::new(0, BASE, RATE, true);
    let mut ev = Event::default();
    let (mut bids, mut auctions) = (Vec::new(), HashMap::new());
    for n in 0..EVENTS {
        model.fill(n, &mut ev);
        if ev.kind == BID {
            bids.push(Bid {
                auction: ev.auction,
                bidder: ev.bidder,
                price: ev.price,
                channel: model.channel_name(ev.channel_idx).to_string(),
                url: model.channel_url(ev.channel_idx).to_string(),
                t: ev.date_time,
                extra: model.extra(&ev).to_string(),
            });
        } else if ev.kind == AUCTION {
            let a = Auction {
                item_name: ev.item_name.clone(),
                seller: ev.seller,
                category: ev.category,
            };
            auctions.insert(ev.auction_id, a);
        }
    }
    (bids, auctions)
}

/// (year, month, day, hour, minute) of ms since the epoch (UTC; Hinnant's civil_from_days).
fn civil(ms: i64) -> (i64, i64, i64, i64, i64) {
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, in_day / 3_600_000, in_day % 3_600_000 / 60_000)
}

fn day(ms: i64) -> String {
    let (y, m, d, _, _) = civil(ms);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The rows of a final table (or reference) as canonical JSON, with a count each.
type Rows = BTreeMap<String, i64>;

fn rows(list: impl IntoIterator<Item = Value>) -> Rows {
    let mut out = Rows::new();
    for v in list {
        *out.entry(v.to_string()).or_default() += 1;
    }
    out
}

/// The final table of query `q` at `parallelism`, each row through `shape`.
fn run(dir: &Path, q: &str, parallelism: usize, shape: impl Fn(&Value) -> Value) -> Rows {
    let table = final_table(&run_printed(dir, &job(q, parallelism)));
    let mut out = Rows::new();
    for (row, n) in table {
        let v: Value = serde_json::from_str(&row).unwrap();
        *out.entry(shape(&v).to_string()).or_default() += n;
    }
    out
}

/// Rank 1: price under 10,000; rank 2: under 1,000,000; rank 3: the rest.
fn rank(price: i64) -> usize {
    match price {
        p if p < 10_000 => 1,
        p if p < 1_000_000 => 2,
        _ => 3,
    }
}

/// The counts q15 and q16 report for a group of bids, in their column order.
fn bid_statistics(group: &[&Bid]) -> Vec<i64> {
    let mut bids = [0i64; 4];
    let mut bidders: [BTreeSet<i64>; 4] = Default::default();
    let mut auctions: [BTreeSet<i64>; 4] = Default::default();
    for b in group {
        for r in [0, rank(b.price)] {
            bids[r] += 1;
            bidders[r].insert(b.bidder);
            auctions[r].insert(b.auction);
        }
    }
    let mut out = bids.to_vec();
    out.extend(bidders.iter().map(|s| s.len() as i64));
    out.extend(auctions.iter().map(|s| s.len() as i64));
    out
}

const STATISTICS: [&str; 12] = [
    "total_bids",
    "rank1_bids",
    "rank2_bids",
    "rank3_bids",
    "total_bidders",
    "rank1_bidders",
    "rank2_bidders",
    "rank3_bidders",
    "total_auctions",
    "rank1_auctions",
    "rank2_auctions",
    "rank3_auctions",
];

fn statistics_of(v: &Value) -> Vec<i64> {
    STATISTICS.iter().map(|c| v[c].as_i64().unwrap()).collect()
}

fn group_by<K: Ord>(bids: &[Bid], key: impl Fn(&Bid) -> K) -> BTreeMap<K, Vec<&Bid>> {
    let mut out: BTreeMap<K, Vec<&Bid>> = BTreeMap::new();
    for b in bids {
        out.entry(key(b)).or_default().push(b);
    }
    out
}

/// The query's reference: its final table from the model.
fn reference(q: &str, bids: &[Bid], auctions: &HashMap<i64, Auction>) -> Rows {
    match q {
        "q13" => rows(bids.iter().map(|b| {
            json!([
                b.auction,
                b.bidder,
                b.price,
                b.t,
                format!("side-{}", b.auction % 10_000)
            ])
        })),
        "q14" => rows(
            bids.iter()
                .filter(|b| (b.price as i128 * 908) > 1_000_000_000 && (b.price as i128 * 908) < 50_000_000_000)
                .map(|b| {
                    let hour = civil(b.t).3;
                    let part = match hour {
                        8..=18 => "dayTime",
                        h if h <= 6 || h >= 20 => "nightTime",
                        _ => "otherTime",
                    };
                    let cs = b.extra.chars().filter(|c| *c == 'c').count();
                    json!([b.auction, b.bidder, b.price * 908, part, b.t, b.extra, cs])
                }),
        ),
        "q15" => rows(
            group_by(bids, |b| day(b.t))
                .into_iter()
                .map(|(d, g)| json!([d, bid_statistics(&g)])),
        ),
        "q16" => rows(
            group_by(bids, |b| (b.channel.clone(), day(b.t)))
                .into_iter()
                .map(|((channel, d), g)| {
                    let minute = g
                        .iter()
                        .map(|b| {
                            let (_, _, _, h, m) = civil(b.t);
                            format!("{h:02}:{m:02}")
                        })
                        .max()
                        .unwrap();
                    json!([channel, d, minute, bid_statistics(&g)])
                }),
        ),
        "q17" => rows(
            group_by(bids, |b| (b.auction, day(b.t)))
                .into_iter()
                .map(|((auction, d), g)| {
                    let mut ranks = [0i64; 3];
                    for b in &g {
                        ranks[rank(b.price) - 1] += 1;
                    }
                    let prices: Vec<i64> = g.iter().map(|b| b.price).collect();
                    let sum: i64 = prices.iter().sum();
                    json!([
                        auction,
                        d,
                        g.len(),
                        ranks,
                        prices.iter().min(),
                        prices.iter().max(),
                        sum / g.len() as i64,
                        sum
                    ])
                }),
        ),
        "q18" => rows(group_by(bids, |b| (b.bidder, b.auction)).into_values().map(|g| {
            let b = g.iter().max_by_key(|b| b.t).unwrap();
            json!([b.auction, b.bidder, b.price, b.channel, b.url, b.t, b.extra])
        })),
        "q19" => rows(group_by(bids, |b| b.auction).into_iter().flat_map(|(auction, mut g)| {
            g.sort_by_key(|b| std::cmp::Reverse(b.price));
            g.into_iter()
                .take(10)
                .enumerate()
                .map(move |(i, b)| json!([auction, i + 1, b.price]))
        })),
        "q20" => rows(bids.iter().filter_map(|b| {
            let a = auctions.get(&b.auction).filter(|a| a.category == 10)?;
            Some(json!([
                b.auction,
                b.bidder,
                b.price,
                b.t,
                a.item_name,
                a.seller,
                a.category
            ]))
        })),
        "q21" => {
            let re = regex::Regex::new("(&|^)channel_id=([^&]*)").unwrap();
            rows(bids.iter().filter_map(|b| {
                let known = ["apple", "google", "facebook", "baidu"]
                    .iter()
                    .position(|c| *c == b.channel.to_lowercase());
                let from_url = re
                    .captures(&b.url)
                    .and_then(|c| c.get(2))
                    .map(|m| m.as_str().to_string());
                let id = match known {
                    Some(i) => Some(i.to_string()),
                    None => from_url.clone(),
                };
                (from_url.is_some() || known.is_some()).then(|| json!([b.auction, b.bidder, b.price, b.channel, id]))
            }))
        }
        "q22" => rows(bids.iter().map(|b| {
            let parts: Vec<&str> = b.url.split('/').collect();
            json!([
                b.auction,
                b.bidder,
                b.price,
                b.channel,
                parts.get(3),
                parts.get(4),
                parts.get(5)
            ])
        })),
        _ => unreachable!(),
    }
}

/// A printed row in the reference's shape.
fn shape(q: &str, v: &Value) -> Value {
    let i = |c: &str| v[c].as_i64().unwrap_or_else(|| panic!("{q}: column {c} in {v}"));
    match q {
        "q13" => json!([
            i("auction"),
            i("bidder"),
            i("price"),
            millis(&v["dateTime"]),
            v["value"]
        ]),
        "q14" => json!([
            i("auction"),
            i("bidder"),
            (v["price"].as_f64().unwrap() * 1000.0).round() as i64,
            v["bidTimeType"],
            millis(&v["dateTime"]),
            v["extra"],
            i("c_counts")
        ]),
        "q15" => json!([v["day"], statistics_of(v)]),
        "q16" => json!([v["channel"], v["day"], v["minute"], statistics_of(v)]),
        "q17" => json!([
            i("auction"),
            v["day"],
            i("total_bids"),
            [i("rank1_bids"), i("rank2_bids"), i("rank3_bids")],
            i("min_price"),
            i("max_price"),
            i("avg_price"),
            i("sum_price")
        ]),
        "q18" => json!([
            i("auction"),
            i("bidder"),
            i("price"),
            v["channel"],
            v["url"],
            millis(&v["dateTime"]),
            v["extra"]
        ]),
        "q19" => json!([i("auction"), i("rank_number"), i("price")]),
        "q20" => json!([
            i("auction"),
            i("bidder"),
            i("price"),
            millis(&v["bid_dateTime"]),
            v["itemName"],
            i("seller"),
            i("category")
        ]),
        "q21" => json!([i("auction"), i("bidder"), i("price"), v["channel"], v["channel_id"]]),
        "q22" => json!([
            i("auction"),
            i("bidder"),
            i("price"),
            v["channel"],
            v["dir1"],
            v["dir2"],
            v["dir3"]
        ]),
        _ => unreachable!(),
    }
}

#[test]
fn nexmark_q13_to_q22_match_the_model_at_parallelism_1_2_and_4() {
    let (bids, auctions) = model();
    let dir = tempfile::tempdir().unwrap();
    // The events cross midnight and every part of q14's day.
    let days: BTreeSet<String> = bids.iter().map(|b| day(b.t)).collect();
    assert_eq!(days.len(), 2);
    for q in ["q13", "q14", "q15", "q16", "q17", "q18", "q19", "q20", "q21", "q22"] {
        let want = reference(q, &bids, &auctions);
        assert!(want.len() > 1, "{q}: a reference of one row proves little");
        for p in [1, 2, 4] {
            let got = run(dir.path(), q, p, |v| shape(q, v));
            assert_eq!(
                got.values().sum::<i64>(),
                want.values().sum::<i64>(),
                "{q} at parallelism {p}: rows"
            );
            assert!(
                got == want,
                "{q} at parallelism {p}: the final table differs from the model's"
            );
        }
    }
}
