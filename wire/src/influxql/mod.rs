//! InfluxQL as text: its statements ([`ast`]), the parser that reads them ([`parser`]) and the
//! printer that writes them back ([`print`]). A leaf like the rest of this crate, so the fuzz
//! target can run the parser without the server; planning and answering are the server's
//! (`weir::influxql`).

pub mod ast;
pub mod parser;
pub mod print;
