//! Operators: one file each. Every operator implements [`Operator`]; a per-node
//! [`OperatorFactory`] checks the input schema at plan time and creates one instance per subtask.

pub mod broadcast_process;
pub mod calc;
pub mod changelog_aggregate;
pub mod co_process;
pub mod expr;
pub mod expr_kernels;
pub mod filter;
pub mod flat_map;
pub mod interval_join;
pub mod join;
mod join_rows;
mod join_schema;
pub mod keyed_process;
mod leb128;
pub mod lookup_http;
pub mod lookup_join;
pub mod lookup_table;
pub mod map;
pub mod mini_batch;
pub mod rolling_reduce;
pub mod row_codec;
pub mod row_log;
pub mod running_aggregate;
pub mod select;
pub mod split;
#[cfg(test)]
mod state_backends;
pub mod temporal_join;
#[cfg(test)]
pub(crate) mod testing;
pub mod top_n;
pub mod window;

pub use crate::contract::operator::{
    CalcPart, Operator, OperatorFactory, TaskContext, TimeDomain, UserError, UserResult,
};
