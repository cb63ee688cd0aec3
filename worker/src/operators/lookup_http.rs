//! Lookups over HTTP: each key the join has not seen (or whose answer expired) is fetched with
//! a GET of the table's URL and the key as query parameters (`?id=42`), the JSON answer (an
//! object or an array of them, under a JSON pointer if given) read as the table's rows, and
//! kept in a cache of bounded size per subtask (Flink's partial lookup cache). A key with no
//! rows is cached too, so a missing key is not asked for again until it expires.

use std::collections::{BTreeSet, HashMap};

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::compute::concat_batches;
use arrow::row::RowConverter;
use arrow::util::display::array_value_to_string;

use super::lookup_table::{HttpLookup, LookupTable, key_converter};
use crate::connectors::format::{Format, RecordDecoder};
use crate::connectors::http::{HttpConfig, client, fetch};
use crate::contract::error::{Result, WeirError};

/// The rows found for a batch's keys: the rows, and per encoded key its row numbers.
pub struct Found {
    /// The rows, in the lookup table's columns.
    pub rows: RecordBatch,
    /// Encoded key → its rows.
    pub index: HashMap<Box<[u8]>, Vec<u32>>,
}

/// One subtask's cache of answers.
pub struct HttpCache {
    lookup: HttpLookup,
    converter: RowConverter,
    /// Encoded key → (its rows, when fetched).
    answers: HashMap<Box<[u8]>, (RecordBatch, i64)>,
    /// (fetched at, key), oldest first, for eviction.
    order: BTreeSet<(i64, Box<[u8]>)>,
    /// Answers that were not rows (counted, logged).
    pub rejected: u64,
}

impl HttpCache {
    /// An empty cache for keys of these types.
    pub fn new(lookup: HttpLookup, key_types: &[arrow::datatypes::DataType]) -> Result<Self> {
        Ok(HttpCache {
            converter: key_converter(key_types)?,
            lookup,
            answers: HashMap::new(),
            order: BTreeSet::new(),
            rejected: 0,
        })
    }

    /// The rows of each key in `keys` (encoded keys and their columns, row `i` of the key
    /// columns for the `i`-th), fetching those not cached or older than `ttl_ms` at `now`.
    pub fn find(
        &mut self,
        table: &LookupTable,
        keys: &[(Box<[u8]>, usize)],
        columns: &[ArrayRef],
        now: i64,
        ttl_ms: Option<i64>,
    ) -> Result<Found> {
        let fresh = |at: i64| ttl_ms.is_none_or(|ttl| now < at.saturating_add(ttl));
        let mut missing: Vec<(Box<[u8]>, String)> = Vec::new();
        let mut asked: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
        for (key, row) in keys {
            if self.answers.get(key).is_some_and(|(_, at)| fresh(*at)) || !asked.insert(key) {
                continue;
            }
            let mut url = reqwest::Url::parse(&self.lookup.url)
                .map_err(|e| WeirError::plan(format!("lookup table '{}': url: {e}", table.name)))?;
            for (param, column) in self.lookup.params.iter().zip(columns) {
                let value = array_value_to_string(column, *row)
                    .map_err(|e| WeirError::plan(format!("lookup table '{}': key: {e}", table.name)))?;
                url.query_pairs_mut().append_pair(param, &value);
            }
            missing.push((key.clone(), url.to_string()));
        }
        if !missing.is_empty() {
            self.fetch_all(table, missing, now)?;
        }
        let mut parts = Vec::new();
        let mut index: HashMap<Box<[u8]>, Vec<u32>> = HashMap::new();
        let mut offset = 0u32;
        for (key, _) in keys {
            if index.contains_key(key) {
                continue;
            }
            let Some((rows, _)) = self.answers.get(key) else {
                continue;
            };
            let n = rows.num_rows() as u32;
            index.insert(key.clone(), (offset..offset + n).collect());
            offset += n;
            parts.push(rows.clone());
        }
        let schema = table.output_schema(&self.lookup.schema)?;
        let rows = concat_batches(&schema, &parts)
            .map_err(|e| WeirError::plan(format!("lookup table '{}': {e}", table.name)))?;
        self.evict();
        Ok(Found { rows, index })
    }

    /// GETs each missing key's URL (at most 16 at a time) and caches the answers.
    fn fetch_all(&mut self, table: &LookupTable, missing: Vec<(Box<[u8]>, String)>, now: i64) -> Result<()> {
        let pointer = self.lookup.pointer.clone();
        let urls: Vec<String> = missing.iter().map(|(_, u)| u.clone()).collect();
        let answers = super::lookup_table::off_runtime(move |rt| {
            rt.block_on(async move {
                use futures::StreamExt;
                let client = client();
                let asks = urls.into_iter().map(|url| {
                    let config = HttpConfig {
                        url,
                        interval_ms: 0,
                        polls: None,
                        pointer: pointer.clone(),
                        schema: None,
                        headers: Default::default(),
                        max_failures: 1,
                    };
                    let client = client.clone();
                    async move {
                        // Three tries, 100 ms then 200 ms apart.
                        let mut wait = 100;
                        loop {
                            match fetch(&client, &config).await {
                                Err(e) if wait <= 200 => {
                                    tracing::warn!("lookup: {e}; trying again");
                                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                                    wait *= 2;
                                }
                                other => return other,
                            }
                        }
                    }
                });
                Ok(futures::stream::iter(asks).buffered(16).collect::<Vec<_>>().await)
            })
        })?;
        let decoder = RecordDecoder::new(Format::Json, self.lookup.schema.clone());
        for ((key, url), answer) in missing.into_iter().zip(answers) {
            let records = match answer {
                Err(e) => return Err(WeirError::io(&format!("lookup-{}", table.name), e)),
                Ok(Err((body, reason))) => {
                    self.rejected += 1;
                    tracing::warn!(table = %table.name, %url, %reason, body, "lookup answer is not rows; the key has none");
                    Vec::new()
                }
                Ok(Ok(records)) => records,
            };
            let decoded = decoder.decode(&records)?;
            for (raw, reason) in &decoded.bad {
                self.rejected += 1;
                tracing::warn!(table = %table.name, %url, %reason, raw, "malformed row in a lookup answer, skipped");
            }
            let rows = match decoded.batch {
                Some(batch) => {
                    let (rows, keys) = table.shape(batch)?;
                    // Only the rows of the key asked for (a server may answer loosely).
                    let encoded = self
                        .converter
                        .convert_columns(&keys)
                        .map_err(|e| WeirError::plan(format!("lookup table '{}': {e}", table.name)))?;
                    let keep: arrow::array::BooleanArray = (0..rows.num_rows())
                        .map(|i| Some(encoded.row(i).as_ref() == key.as_ref() && !keys.iter().any(|k| k.is_null(i))))
                        .collect();
                    arrow::compute::filter_record_batch(&rows, &keep)
                        .map_err(|e| WeirError::plan(format!("lookup table '{}': {e}", table.name)))?
                }
                None => RecordBatch::new_empty(table.output_schema(&self.lookup.schema)?),
            };
            if let Some((_, at)) = self.answers.insert(key.clone(), (rows, now)) {
                self.order.remove(&(at, key.clone()));
            }
            self.order.insert((now, key));
        }
        Ok(())
    }

    /// Drops the oldest answers past the cache's size (after a batch took what it needs).
    fn evict(&mut self) {
        while self.answers.len() > self.lookup.max_rows.max(1) {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.answers.remove(&oldest);
        }
    }
}
