//! The event model: event number `n` → one person, auction or bid, a pure function of
//! (seed, n). A line-by-line port of the Flink peer's `NexmarkModel.java`: the same constants,
//! rules and order of random draws (see that kit's README, "The event model").

use crate::splitmix::SplitMix;

/// First person id.
pub const FIRST_PERSON_ID: i64 = 1000;
/// First auction id.
pub const FIRST_AUCTION_ID: i64 = 1000;
/// First category id.
pub const FIRST_CATEGORY_ID: i64 = 10;
const NUM_CATEGORIES: i32 = 5;
const PERSON_PROPORTION: i64 = 1;
const AUCTION_PROPORTION: i64 = 3;
const TOTAL_PROPORTION: i64 = 50;
const HOT_AUCTION_RATIO: i32 = 2;
const HOT_BIDDERS_RATIO: i32 = 4;
const HOT_SELLERS_RATIO: i32 = 4;
const HOT_BATCH: i64 = 100;
const NUM_ACTIVE_PEOPLE: i64 = 1000;
const NUM_IN_FLIGHT_AUCTIONS: i64 = 100;
const PERSON_ID_LEAD: i64 = 10;
const AUCTION_ID_LEAD: i64 = 10;
const AVG_PERSON_BYTES: i32 = 200;
const AVG_AUCTION_BYTES: i32 = 500;
const AVG_BID_BYTES: i32 = 100;
const HOT_CHANNELS_RATIO: i32 = 2;
const NUM_CHANNELS: usize = 10_000;
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
/// US states of persons.
pub const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
/// Cities of persons.
pub const US_CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
const EXTRA_POOL_BYTES: i32 = 1 << 20;

/// Event types.
pub const PERSON: u8 = 0;
/// Auction.
pub const AUCTION: u8 = 1;
/// Bid.
pub const BID: u8 = 2;

/// One generated event; reused between calls.
#[derive(Debug, Clone, Default)]
pub struct Event {
    /// Event number.
    pub n: i64,
    /// 0 person, 1 auction, 2 bid.
    pub kind: u8,
    /// Event time, ms.
    pub date_time: i64,
    /// Person id.
    pub person_id: i64,
    /// Index into first × last names.
    pub name_idx: usize,
    /// Person email.
    pub email: String,
    /// Person credit card.
    pub credit_card: String,
    /// Index into [`US_CITIES`].
    pub city_idx: usize,
    /// Index into [`US_STATES`].
    pub state_idx: usize,
    /// Auction id.
    pub auction_id: i64,
    /// Auction item name.
    pub item_name: String,
    /// Auction description.
    pub description: String,
    /// Auction initial bid.
    pub initial_bid: i64,
    /// Auction reserve.
    pub reserve: i64,
    /// Auction expiry, ms.
    pub expires: i64,
    /// Auction seller.
    pub seller: i64,
    /// Auction category.
    pub category: i64,
    /// Bid auction.
    pub auction: i64,
    /// Bid bidder.
    pub bidder: i64,
    /// Bid price, cents.
    pub price: i64,
    /// Channel index: 0..3 hot, 4 + c "channel-c".
    pub channel_idx: usize,
    /// Offset of `extra` in the pool.
    pub extra_offset: usize,
    /// Length of `extra`.
    pub extra_len: usize,
}

/// The model with its derived tables.
#[derive(Debug, Clone)]
pub struct NexmarkModel {
    seed: i64,
    base_time_ms: i64,
    events_per_second: i64,
    bidder_offset_quirk: bool,
    channel_names: Vec<String>,
    channel_urls: Vec<String>,
    extra_pool: String,
}

/// The type of event `n`.
pub fn event_type(n: i64) -> u8 {
    let rem = n % TOTAL_PROPORTION;
    if rem < PERSON_PROPORTION {
        PERSON
    } else if rem < PERSON_PROPORTION + AUCTION_PROPORTION {
        AUCTION
    } else {
        BID
    }
}

fn last_base0_person_id(n: i64) -> i64 {
    let epoch = n / TOTAL_PROPORTION;
    let mut offset = n % TOTAL_PROPORTION;
    if offset >= PERSON_PROPORTION {
        offset = PERSON_PROPORTION - 1;
    }
    epoch * PERSON_PROPORTION + offset
}

fn last_base0_auction_id(n: i64) -> i64 {
    let mut epoch = n / TOTAL_PROPORTION;
    let mut offset = n % TOTAL_PROPORTION;
    if offset < PERSON_PROPORTION {
        epoch -= 1;
        offset = AUCTION_PROPORTION - 1;
    } else if offset >= PERSON_PROPORTION + AUCTION_PROPORTION {
        offset = AUCTION_PROPORTION - 1;
    } else {
        offset -= PERSON_PROPORTION;
    }
    epoch * AUCTION_PROPORTION + offset
}

fn next_base0_person_id(n: i64, rng: &mut SplitMix) -> i64 {
    let num_people = last_base0_person_id(n) + 1;
    let active = num_people.min(NUM_ACTIVE_PEOPLE);
    let k = rng.next_long(active + PERSON_ID_LEAD);
    num_people - active + k
}

fn next_base0_auction_id(n: i64, rng: &mut SplitMix) -> i64 {
    let max_auction = last_base0_auction_id(n);
    let min_auction = (max_auction - NUM_IN_FLIGHT_AUCTIONS).max(0);
    min_auction + rng.next_long(max_auction - min_auction + 1 + AUCTION_ID_LEAD)
}

/// Java's `Math.round(double)`: floor(x + 0.5).
fn java_round(x: f64) -> i64 {
    (x + 0.5).floor() as i64
}

fn next_price(rng: &mut SplitMix) -> i64 {
    java_round(10f64.powf(rng.next_double() * 6.0) * 100.0)
}

/// Appends 3..max-1 chars (each `special` with p = 1/13, else a-z), trimmed of spaces.
fn next_string(rng: &mut SplitMix, max_len: i32, special: char, out: &mut String) {
    let len = 3 + rng.next_int(max_len - 3);
    let start = out.len();
    for _ in 0..len {
        let c = if rng.next_int(13) == 0 {
            special
        } else {
            (b'a' + rng.next_int(26) as u8) as char
        };
        out.push(c);
    }
    // Java's trim() strips chars <= ' ' at both ends; only ' ' can occur here. In place.
    let end = start + out[start..].trim_end_matches(' ').len();
    out.truncate(end);
    let lead = out[start..].len() - out[start..].trim_start_matches(' ').len();
    out.drain(start..start + lead);
}

fn base_url(rng: &mut SplitMix) -> String {
    let mut s = String::from("https://www.nexmark.com/");
    next_string(rng, 5, '_', &mut s);
    s.push('/');
    next_string(rng, 5, '_', &mut s);
    s.push('/');
    next_string(rng, 5, '_', &mut s);
    s.push('/');
    s.push_str("item.htm?query=1");
    s
}

fn next_extra(rng: &mut SplitMix, current_size: i32, desired_average: i32, ev: &mut Event) {
    if current_size > desired_average {
        ev.extra_offset = 0;
        ev.extra_len = 0;
        return;
    }
    let avg = desired_average - current_size;
    let delta = java_round(f64::from(avg) * 0.2) as i32;
    let min_size = avg - delta;
    let size = min_size + if delta == 0 { 0 } else { rng.next_int(2 * delta) };
    ev.extra_offset = rng.next_int(EXTRA_POOL_BYTES - size) as usize;
    ev.extra_len = size as usize;
}

impl NexmarkModel {
    /// The model for these settings; builds the URL table and the extra pool from the seed.
    pub fn new(seed: i64, base_time_ms: i64, events_per_second: i64, bidder_offset_quirk: bool) -> Self {
        let mut rng = SplitMix::for_record(seed, -1);
        let mut names = Vec::with_capacity(HOT_CHANNELS.len() + NUM_CHANNELS);
        let mut urls = Vec::with_capacity(HOT_CHANNELS.len() + NUM_CHANNELS);
        for h in HOT_CHANNELS {
            names.push(h.to_string());
            urls.push(base_url(&mut rng));
        }
        for c in 0..NUM_CHANNELS {
            let mut url = base_url(&mut rng);
            if rng.next_int(10) > 0 {
                url.push_str(&format!("&channel_id={}", (c as i32).reverse_bits().wrapping_abs()));
            }
            names.push(format!("channel-{c}"));
            urls.push(url);
        }
        let pool: String = (0..EXTRA_POOL_BYTES)
            .map(|_| (b'a' + rng.next_int(26) as u8) as char)
            .collect();
        NexmarkModel {
            seed,
            base_time_ms,
            events_per_second: events_per_second.max(1),
            bidder_offset_quirk,
            channel_names: names,
            channel_urls: urls,
            extra_pool: pool,
        }
    }

    /// Event time of event `n`.
    pub fn timestamp(&self, n: i64) -> i64 {
        self.base_time_ms + (n * 1000).div_euclid(self.events_per_second)
    }

    /// Person name of a name index.
    pub fn person_name(idx: usize) -> &'static str {
        static NAMES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
            FIRST_NAMES
                .iter()
                .flat_map(|f| LAST_NAMES.iter().map(move |l| format!("{f} {l}")))
                .collect()
        });
        &NAMES[idx]
    }

    /// Channel name.
    pub fn channel_name(&self, idx: usize) -> &str {
        &self.channel_names[idx]
    }

    /// Channel URL.
    pub fn channel_url(&self, idx: usize) -> &str {
        &self.channel_urls[idx]
    }

    /// The `extra` text of an event.
    pub fn extra(&self, ev: &Event) -> &str {
        &self.extra_pool[ev.extra_offset..ev.extra_offset + ev.extra_len]
    }

    fn auction_length_ms(&self, n: i64, timestamp: i64, rng: &mut SplitMix) -> i64 {
        let num_events_for_auctions = (NUM_IN_FLIGHT_AUCTIONS * TOTAL_PROPORTION) / AUCTION_PROPORTION;
        let future = self.timestamp(n + num_events_for_auctions);
        let horizon = future - timestamp;
        1 + rng.next_long((horizon * 2).max(1))
    }

    /// Fills `ev` with event `n`.
    pub fn fill(&self, n: i64, ev: &mut Event) {
        let mut rng = SplitMix::for_record(self.seed, n);
        let ts = self.timestamp(n);
        ev.n = n;
        ev.date_time = ts;
        ev.kind = event_type(n);
        match ev.kind {
            PERSON => {
                ev.person_id = last_base0_person_id(n) + FIRST_PERSON_ID;
                let first = rng.next_int(FIRST_NAMES.len() as i32) as usize;
                let last = rng.next_int(LAST_NAMES.len() as i32) as usize;
                ev.name_idx = first * LAST_NAMES.len() + last;
                ev.email.clear();
                next_string(&mut rng, 7, ' ', &mut ev.email);
                ev.email.push('@');
                next_string(&mut rng, 5, ' ', &mut ev.email);
                ev.email.push_str(".com");
                ev.credit_card.clear();
                for i in 0..4 {
                    if i > 0 {
                        ev.credit_card.push(' ');
                    }
                    let d = rng.next_int(10000);
                    for div in [1000, 100, 10, 1] {
                        ev.credit_card.push((b'0' + (d / div % 10) as u8) as char);
                    }
                }
                ev.city_idx = rng.next_int(US_CITIES.len() as i32) as usize;
                ev.state_idx = rng.next_int(US_STATES.len() as i32) as usize;
                let name_len = FIRST_NAMES[first].len() + 1 + LAST_NAMES[last].len();
                let current = 8
                    + name_len
                    + ev.email.len()
                    + ev.credit_card.len()
                    + US_CITIES[ev.city_idx].len()
                    + US_STATES[ev.state_idx].len();
                next_extra(&mut rng, current as i32, AVG_PERSON_BYTES, ev);
            }
            AUCTION => {
                ev.auction_id = last_base0_auction_id(n) + FIRST_AUCTION_ID;
                let seller = if rng.next_int(HOT_SELLERS_RATIO) > 0 {
                    (last_base0_person_id(n) / HOT_BATCH) * HOT_BATCH
                } else {
                    next_base0_person_id(n, &mut rng)
                };
                ev.seller = seller + FIRST_PERSON_ID;
                ev.category = FIRST_CATEGORY_ID + i64::from(rng.next_int(NUM_CATEGORIES));
                ev.initial_bid = next_price(&mut rng);
                ev.expires = ts + self.auction_length_ms(n, ts, &mut rng);
                ev.item_name.clear();
                next_string(&mut rng, 20, ' ', &mut ev.item_name);
                ev.description.clear();
                next_string(&mut rng, 100, ' ', &mut ev.description);
                ev.reserve = ev.initial_bid + next_price(&mut rng);
                let current = 8 + ev.item_name.len() + ev.description.len() + 40;
                next_extra(&mut rng, current as i32, AVG_AUCTION_BYTES, ev);
            }
            _ => {
                let auction = if rng.next_int(HOT_AUCTION_RATIO) > 0 {
                    (last_base0_auction_id(n) / HOT_BATCH) * HOT_BATCH
                } else {
                    next_base0_auction_id(n, &mut rng)
                };
                ev.auction = auction + FIRST_AUCTION_ID;
                let mut bidder = if rng.next_int(HOT_BIDDERS_RATIO) > 0 {
                    (last_base0_person_id(n) / HOT_BATCH) * HOT_BATCH + 1
                } else {
                    next_base0_person_id(n, &mut rng)
                };
                bidder += FIRST_PERSON_ID;
                ev.price = next_price(&mut rng);
                ev.channel_idx = if rng.next_int(HOT_CHANNELS_RATIO) > 0 {
                    rng.next_int(HOT_CHANNELS.len() as i32) as usize
                } else {
                    HOT_CHANNELS.len() + rng.next_int(NUM_CHANNELS as i32) as usize
                };
                if self.bidder_offset_quirk {
                    bidder += FIRST_PERSON_ID;
                }
                ev.bidder = bidder;
                next_extra(&mut rng, 32, AVG_BID_BYTES, ev);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> NexmarkModel {
        NexmarkModel::new(0, 1_704_067_200_000, 10_000_000, true)
    }

    #[test]
    fn first_events_match_the_peer_dump() {
        let m = model();
        let mut ev = Event::default();
        m.fill(0, &mut ev);
        assert_eq!(NexmarkModel::person_name(ev.name_idx), "Deiter White");
        assert_eq!(ev.email, "ceg@tont.com");
        assert_eq!(ev.credit_card, "2046 8441 8554 6602");
        assert_eq!(US_CITIES[ev.city_idx], "Cheyenne");
        assert_eq!(ev.extra_len, 159);
        assert!(m.extra(&ev).starts_with("iudknraiihix"));
        m.fill(1, &mut ev);
        assert_eq!(
            (ev.auction_id, ev.item_name.as_str(), ev.initial_bid, ev.reserve),
            (1000, "linxec", 42629, 1530881)
        );
        assert_eq!(
            (ev.expires, ev.seller, ev.category, ev.extra_len),
            (1_704_067_200_001, 1000, 11, 403)
        );
        m.fill(4, &mut ev);
        assert_eq!(
            (ev.auction, ev.bidder, ev.price, m.channel_name(ev.channel_idx)),
            (1010, 2002, 326, "channel-2283")
        );
        assert_eq!(
            m.channel_url(ev.channel_idx),
            "https://www.nexmark.com/wiy/mcid/rjj_/item.htm?query=1&channel_id=686817280"
        );
        m.fill(5, &mut ev);
        assert_eq!(
            (ev.auction, ev.bidder, ev.price, m.channel_name(ev.channel_idx)),
            (1006, 2001, 4102893, "Apple")
        );
        assert_eq!(
            m.channel_url(ev.channel_idx),
            "https://www.nexmark.com/ucuv/jop/dwa/item.htm?query=1"
        );
        assert!(m.extra(&ev).starts_with("ajzfafefctac"));
    }
}
