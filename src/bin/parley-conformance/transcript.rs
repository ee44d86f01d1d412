//! The running record of one case's exchanges (requests sent, answers and events received), shown
//! in the report when the case fails.

use std::cell::RefCell;
use std::rc::Rc;

/// Lines kept per case; a failure shows the last of them.
const KEEP: usize = 60;

/// Shared by the HTTP client and every WebSocket of a case; cleared between cases.
#[derive(Clone, Default)]
pub struct Transcript(Rc<RefCell<Vec<String>>>);

impl Transcript {
    pub fn note(&self, line: String) {
        let mut lines = self.0.borrow_mut();
        if lines.len() == KEEP {
            lines.remove(0);
        }
        lines.push(line);
    }

    /// Everything noted since the last take, emptying the record.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.borrow_mut())
    }
}
