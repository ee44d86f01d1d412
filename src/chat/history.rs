//! A group's history for one member (`GET /groups/{id}/messages`): who may read it, and the
//! page, held under the read limit while the store cannot write.

use uuid::Uuid;

use super::Chat;
use crate::error::ApiError;
use crate::store::HistoryPage;

impl Chat {
    /// The newest `limit` messages of `group` before seq `before` (`None`: the newest) that
    /// `user` may read: those of the periods they were a member, a former member's included
    /// (as a sync replays them). Unknown group: 404; never a member: 403 `not_member`.
    pub fn history(
        &self,
        user: Uuid,
        group: Uuid,
        before: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, ApiError> {
        self.group(group)?;
        let periods = self.store.member_periods(user, group)?;
        if periods.is_empty() {
            return Err(ApiError::not_member());
        }
        // While the store cannot write, nothing above the read limit is shown (as a sync).
        let limit_before = self.read_limit.map_or(u64::MAX, |limit| limit.seq + 1);
        let before = before.unwrap_or(u64::MAX).min(limit_before);
        Ok(self.store.history(user, group, &periods, before, limit)?)
    }
}
