//! State descriptors: a name, the value type, and options (TTL, reduce or aggregate function).

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

/// A single value per key.
#[derive(Debug)]
pub struct ValueStateDescriptor<T> {
    pub(crate) name: String,
    pub(crate) ttl: Option<Duration>,
    _t: PhantomData<fn() -> T>,
}

/// A list of values per key.
#[derive(Debug)]
pub struct ListStateDescriptor<T> {
    pub(crate) name: String,
    pub(crate) ttl: Option<Duration>,
    _t: PhantomData<fn() -> T>,
}

/// A map per key.
#[derive(Debug)]
pub struct MapStateDescriptor<K, V> {
    pub(crate) name: String,
    pub(crate) ttl: Option<Duration>,
    _t: PhantomData<fn() -> (K, V)>,
}

/// A reduce function: the current value and a new one to the next value.
pub type ReduceFn<T> = dyn Fn(&T, &T) -> T + Send + Sync;

/// A value per key that new values are reduced into.
pub struct ReducingStateDescriptor<T> {
    pub(crate) name: String,
    pub(crate) ttl: Option<Duration>,
    pub(crate) reduce: Arc<ReduceFn<T>>,
}

/// Flink's `AggregateFunction`: an accumulator per key (or window) that inputs are added to.
pub trait AggregateFunction<In, Acc, Out>: Send + Sync {
    /// A fresh accumulator.
    fn create_accumulator(&self) -> Acc;
    /// Adds one input.
    fn add(&self, value: In, acc: &mut Acc);
    /// The result for an accumulator.
    fn get_result(&self, acc: &Acc) -> Out;
    /// Merges two accumulators.
    fn merge(&self, a: Acc, b: Acc) -> Acc;
}

/// An accumulator per key fed by an [`AggregateFunction`].
pub struct AggregatingStateDescriptor<In, Acc, Out> {
    pub(crate) name: String,
    pub(crate) ttl: Option<Duration>,
    pub(crate) function: Arc<dyn AggregateFunction<In, Acc, Out>>,
}

macro_rules! ttl {
    ($t:ident < $($g:ident),* >) => {
        impl<$($g),*> $t<$($g),*> {
            /// Entries not written for `ttl` read as absent and are dropped.
            pub fn with_ttl(mut self, ttl: Duration) -> Self {
                self.ttl = Some(ttl);
                self
            }
        }
    };
}
ttl!(ValueStateDescriptor<T>);
ttl!(ListStateDescriptor<T>);
ttl!(MapStateDescriptor<K, V>);
ttl!(ReducingStateDescriptor<T>);
ttl!(AggregatingStateDescriptor<In, Acc, Out>);

impl<T> Clone for ValueStateDescriptor<T> {
    fn clone(&self) -> Self {
        ValueStateDescriptor {
            name: self.name.clone(),
            ttl: self.ttl,
            _t: PhantomData,
        }
    }
}

impl<T> Clone for ListStateDescriptor<T> {
    fn clone(&self) -> Self {
        ListStateDescriptor {
            name: self.name.clone(),
            ttl: self.ttl,
            _t: PhantomData,
        }
    }
}

impl<K, V> Clone for MapStateDescriptor<K, V> {
    fn clone(&self) -> Self {
        MapStateDescriptor {
            name: self.name.clone(),
            ttl: self.ttl,
            _t: PhantomData,
        }
    }
}

impl<T> ValueStateDescriptor<T> {
    /// A value state named `name`.
    pub fn new(name: &str) -> Self {
        ValueStateDescriptor {
            name: name.into(),
            ttl: None,
            _t: PhantomData,
        }
    }
}

impl<T> ListStateDescriptor<T> {
    /// A list state named `name`.
    pub fn new(name: &str) -> Self {
        ListStateDescriptor {
            name: name.into(),
            ttl: None,
            _t: PhantomData,
        }
    }
}

impl<K, V> MapStateDescriptor<K, V> {
    /// A map state named `name`.
    pub fn new(name: &str) -> Self {
        MapStateDescriptor {
            name: name.into(),
            ttl: None,
            _t: PhantomData,
        }
    }
}

impl<T> ReducingStateDescriptor<T> {
    /// A reducing state named `name` with `reduce`.
    pub fn new(name: &str, reduce: impl Fn(&T, &T) -> T + Send + Sync + 'static) -> Self {
        ReducingStateDescriptor {
            name: name.into(),
            ttl: None,
            reduce: Arc::new(reduce),
        }
    }
}

impl<In, Acc, Out> AggregatingStateDescriptor<In, Acc, Out> {
    /// An aggregating state named `name` with `function`.
    pub fn new(name: &str, function: impl AggregateFunction<In, Acc, Out> + 'static) -> Self {
        AggregatingStateDescriptor {
            name: name.into(),
            ttl: None,
            function: Arc::new(function),
        }
    }
}
