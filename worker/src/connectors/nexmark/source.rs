//! The Nexmark source: subtask `k` of `p` generates events `k, k + p, k + 2p, …`, so all
//! subtasks move through event time together and the set of events is the same for every `p`.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, Int32Builder, Int64Array, Int64Builder, StringArray, StringBuilder, StructArray,
    TimestampMillisecondBuilder,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::Int64Type;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use super::config::{NexmarkConfig, NexmarkStream};
use super::model::{self, Event, NexmarkModel, US_CITIES, US_STATES};
use crate::connectors::{Source, SourceFactory};
use crate::contract::SourceContext;
use crate::contract::TaskContext;
use crate::contract::error::{Result, WeirError};
use crate::throttle::Throttle;

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

fn person_fields() -> Fields {
    Fields::from(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("emailAddress", DataType::Utf8, true),
        Field::new("creditCard", DataType::Utf8, true),
        Field::new("city", DataType::Utf8, true),
        Field::new("state", DataType::Utf8, true),
        Field::new("dateTime", ts(), true),
        Field::new("extra", DataType::Utf8, true),
    ])
}

fn auction_fields() -> Fields {
    Fields::from(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("itemName", DataType::Utf8, true),
        Field::new("description", DataType::Utf8, true),
        Field::new("initialBid", DataType::Int64, true),
        Field::new("reserve", DataType::Int64, true),
        Field::new("dateTime", ts(), true),
        Field::new("expires", ts(), true),
        Field::new("seller", DataType::Int64, true),
        Field::new("category", DataType::Int64, true),
        Field::new("extra", DataType::Utf8, true),
    ])
}

fn bid_fields() -> Fields {
    Fields::from(vec![
        Field::new("auction", DataType::Int64, true),
        Field::new("bidder", DataType::Int64, true),
        Field::new("price", DataType::Int64, true),
        Field::new("channel", DataType::Utf8, true),
        Field::new("url", DataType::Utf8, true),
        Field::new("dateTime", ts(), true),
        Field::new("extra", DataType::Utf8, true),
    ])
}

/// The output schema of a stream selection.
pub fn schema_of(stream: NexmarkStream) -> SchemaRef {
    Arc::new(match stream {
        NexmarkStream::Bid => Schema::new(bid_fields()),
        NexmarkStream::Person => Schema::new(person_fields()),
        NexmarkStream::Auction => Schema::new(auction_fields()),
        NexmarkStream::All => Schema::new(vec![
            Field::new("event_type", DataType::Int32, false),
            Field::new("person", DataType::Struct(person_fields()), true),
            Field::new("auction", DataType::Struct(auction_fields()), true),
            Field::new("bid", DataType::Struct(bid_fields()), true),
        ]),
    })
}

/// The Nexmark source factory.
pub struct Nexmark {
    node: String,
    config: NexmarkConfig,
    model: Arc<NexmarkModel>,
}

impl Nexmark {
    /// A Nexmark source named `node`.
    pub fn new(node: &str, config: NexmarkConfig) -> Result<Self> {
        if config.rate <= 0 {
            return Err(WeirError::config(
                "nexmark",
                node,
                format!("rate must be > 0, got {}", config.rate),
            ));
        }
        let model = Arc::new(NexmarkModel::new(
            config.seed,
            config.base_time,
            config.rate,
            config.bidder_offset_quirk,
        ));
        Ok(Nexmark {
            node: node.to_string(),
            config,
            model,
        })
    }
}

#[async_trait]
impl SourceFactory for Nexmark {
    fn connector(&self) -> &'static str {
        "nexmark"
    }
    async fn schema(&self) -> Result<SchemaRef> {
        Ok(schema_of(self.config.stream))
    }
    fn create(&self, schema: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Source>> {
        let _ = &self.node;
        Ok(Box::new(NexmarkReader {
            config: self.config.clone(),
            model: self.model.clone(),
            schema: schema.clone(),
            subtask: ctx.subtask as i64,
            parallelism: ctx.parallelism as i64,
        }))
    }
}

struct NexmarkReader {
    config: NexmarkConfig,
    model: Arc<NexmarkModel>,
    schema: SchemaRef,
    subtask: i64,
    parallelism: i64,
}

#[derive(Default)]
struct PersonCols {
    id: Int64Builder,
    name: StringBuilder,
    email: StringBuilder,
    card: StringBuilder,
    city: StringBuilder,
    state: StringBuilder,
    date_time: TimestampMillisecondBuilder,
    extra: StringBuilder,
}

impl PersonCols {
    fn append(&mut self, ev: &Event, m: &NexmarkModel) {
        self.id.append_value(ev.person_id);
        self.name.append_value(NexmarkModel::person_name(ev.name_idx));
        self.email.append_value(&ev.email);
        self.card.append_value(&ev.credit_card);
        self.city.append_value(US_CITIES[ev.city_idx]);
        self.state.append_value(US_STATES[ev.state_idx]);
        self.date_time.append_value(ev.date_time);
        self.extra.append_value(m.extra(ev));
    }
    fn finish(&mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.id.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.email.finish()),
            Arc::new(self.card.finish()),
            Arc::new(self.city.finish()),
            Arc::new(self.state.finish()),
            Arc::new(self.date_time.finish()),
            Arc::new(self.extra.finish()),
        ]
    }
}

#[derive(Default)]
struct AuctionCols {
    id: Int64Builder,
    item_name: StringBuilder,
    description: StringBuilder,
    initial_bid: Int64Builder,
    reserve: Int64Builder,
    date_time: TimestampMillisecondBuilder,
    expires: TimestampMillisecondBuilder,
    seller: Int64Builder,
    category: Int64Builder,
    extra: StringBuilder,
}

impl AuctionCols {
    fn append(&mut self, ev: &Event, m: &NexmarkModel) {
        self.id.append_value(ev.auction_id);
        self.item_name.append_value(&ev.item_name);
        self.description.append_value(&ev.description);
        self.initial_bid.append_value(ev.initial_bid);
        self.reserve.append_value(ev.reserve);
        self.date_time.append_value(ev.date_time);
        self.expires.append_value(ev.expires);
        self.seller.append_value(ev.seller);
        self.category.append_value(ev.category);
        self.extra.append_value(m.extra(ev));
    }
    fn finish(&mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.id.finish()),
            Arc::new(self.item_name.finish()),
            Arc::new(self.description.finish()),
            Arc::new(self.initial_bid.finish()),
            Arc::new(self.reserve.finish()),
            Arc::new(self.date_time.finish()),
            Arc::new(self.expires.finish()),
            Arc::new(self.seller.finish()),
            Arc::new(self.category.finish()),
            Arc::new(self.extra.finish()),
        ]
    }
}

#[derive(Default)]
struct BidCols {
    auction: Int64Builder,
    bidder: Int64Builder,
    price: Int64Builder,
    channel: StringBuilder,
    url: StringBuilder,
    date_time: TimestampMillisecondBuilder,
    extra: StringBuilder,
}

impl BidCols {
    fn append(&mut self, ev: &Event, m: &NexmarkModel) {
        self.auction.append_value(ev.auction);
        self.bidder.append_value(ev.bidder);
        self.price.append_value(ev.price);
        self.channel.append_value(m.channel_name(ev.channel_idx));
        self.url.append_value(m.channel_url(ev.channel_idx));
        self.date_time.append_value(ev.date_time);
        self.extra.append_value(m.extra(ev));
    }
    fn finish(&mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.auction.finish()),
            Arc::new(self.bidder.finish()),
            Arc::new(self.price.finish()),
            Arc::new(self.channel.finish()),
            Arc::new(self.url.finish()),
            Arc::new(self.date_time.finish()),
            Arc::new(self.extra.finish()),
        ]
    }
}

#[derive(Default)]
struct Builders {
    kinds: Vec<u8>,
    person: PersonCols,
    auction: AuctionCols,
    bid: BidCols,
}

impl Builders {
    fn finish(&mut self, stream: NexmarkStream, schema: &SchemaRef) -> Result<RecordBatch> {
        let kinds = std::mem::take(&mut self.kinds);
        let columns: Vec<ArrayRef> = match stream {
            NexmarkStream::Bid => self.bid.finish(),
            NexmarkStream::Person => self.person.finish(),
            NexmarkStream::Auction => self.auction.finish(),
            NexmarkStream::All => {
                let mut types = Int32Builder::with_capacity(kinds.len());
                kinds.iter().for_each(|k| types.append_value(i32::from(*k)));
                let sparse = |fields: Fields, dense: Vec<ArrayRef>, kind: u8| -> Result<ArrayRef> {
                    let nulls = NullBuffer::from(kinds.iter().map(|x| *x == kind).collect::<Vec<bool>>());
                    let children = dense
                        .iter()
                        .map(|d| scatter(d, &kinds, kind, &nulls))
                        .collect::<Result<Vec<_>>>()?;
                    Ok(Arc::new(StructArray::try_new(fields, children, Some(nulls))?))
                };
                vec![
                    Arc::new(types.finish()),
                    sparse(person_fields(), self.person.finish(), model::PERSON)?,
                    sparse(auction_fields(), self.auction.finish(), model::AUCTION)?,
                    sparse(bid_fields(), self.bid.finish(), model::BID)?,
                ]
            }
        };
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

/// Spreads the dense values of one event type over the rows of that type (the others null),
/// reusing the dense string bytes: cheaper than appending a null per row to every builder.
fn scatter(dense: &ArrayRef, kinds: &[u8], kind: u8, nulls: &NullBuffer) -> Result<ArrayRef> {
    let n = kinds.len();
    Ok(match dense.data_type() {
        DataType::Int64 | DataType::Timestamp(_, _) => {
            let d = arrow::compute::cast(dense, &DataType::Int64)?;
            let d = d.as_primitive::<Int64Type>().values();
            let mut v = vec![0i64; n];
            let mut j = 0;
            for (slot, k) in v.iter_mut().zip(kinds) {
                if *k == kind {
                    *slot = d[j];
                    j += 1;
                }
            }
            let values = Int64Array::new(v.into(), Some(nulls.clone()));
            if dense.data_type() == &DataType::Int64 {
                Arc::new(values)
            } else {
                arrow::compute::cast(&values, dense.data_type())?
            }
        }
        DataType::Utf8 => {
            let d = dense.as_string::<i32>();
            let dense_offsets = d.value_offsets();
            let mut offsets = Vec::with_capacity(n + 1);
            offsets.push(0i32);
            let (mut j, mut end) = (0, 0);
            for k in kinds {
                if *k == kind {
                    j += 1;
                    end = dense_offsets[j];
                }
                offsets.push(end);
            }
            Arc::new(StringArray::try_new(
                OffsetBuffer::new(offsets.into()),
                d.values().clone(),
                Some(nulls.clone()),
            )?)
        }
        other => unreachable!("nexmark columns are Int64, Timestamp or Utf8, not {other}"),
    })
}

#[async_trait]
impl Source for NexmarkReader {
    async fn run(&mut self, ctx: &mut dyn SourceContext) -> Result<()> {
        let stream = self.config.stream;
        let wanted = match stream {
            NexmarkStream::All => None,
            NexmarkStream::Person => Some(model::PERSON),
            NexmarkStream::Auction => Some(model::AUCTION),
            NexmarkStream::Bid => Some(model::BID),
        };
        let limit = self.config.events.map_or(i64::MAX, |e| e.min(i64::MAX as u64) as i64);
        let rate = self.config.rows_per_second.map(|r| r as f64 / self.parallelism as f64);
        let mut throttle = Throttle::new(rate);
        let batch_size = throttle.batch_size(ctx.batch_size());
        let mut ev = Event::default();
        let mut b = Builders::default();
        // The next event number this subtask generates (subtask, subtask + p, …).
        let mut n = ctx.restored_position::<i64>()?.unwrap_or(self.subtask);
        while n < limit {
            let mut rows = 0;
            while rows < batch_size && n < limit {
                let kind = model::event_type(n);
                if wanted.is_none_or(|w| w == kind) {
                    self.model.fill(n, &mut ev);
                    let m = &self.model;
                    if stream == NexmarkStream::All {
                        b.kinds.push(kind);
                    }
                    match kind {
                        model::PERSON => b.person.append(&ev, m),
                        model::AUCTION => b.auction.append(&ev, m),
                        _ => b.bid.append(&ev, m),
                    }
                    rows += 1;
                }
                n += self.parallelism;
            }
            if rows > 0 {
                let batch = b.finish(stream, &self.schema)?;
                ctx.collect(batch).await?;
                ctx.set_position(&n)?;
                throttle.emitted(rows).await;
            }
            if ctx.is_cancelled() {
                break;
            }
        }
        Ok(())
    }
}
