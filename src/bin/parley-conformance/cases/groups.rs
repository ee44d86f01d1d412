//! Membership and its authorization rules: who may join whom and remove whom, the 200 answer, the
//! events each side gets, and the 403/404/409/400 answers; the owner passing on (event 74) and
//! renames (`PUT /groups/{id}`).

use serde_json::json;

use super::{expect_error, expect_event, expect_group, expect_status, Ctx};
use crate::http::Response;
use crate::registry::{ensure_eq, Case, Outcome, Stop};

pub const CASES: &[Case] = &[
    Case::core(
        "authz.join.self",
        "anyone may join a group by its id; the joiner gets 70 and 72, members get 72",
        join_self,
    ),
    Case::core(
        "authz.join.by_member",
        "a member may add another user",
        join_by_member,
    ),
    Case::core(
        "authz.join.forbidden",
        "a non-member adding someone else answers 403 forbidden and changes nothing",
        join_forbidden,
    ),
    Case::core(
        "authz.join.conflict",
        "joining (or adding) a member answers 409 conflict",
        join_conflict,
    ),
    Case::core(
        "authz.left.self",
        "a member may leave; 73 goes to the remaining members and to the one who left",
        left_self,
    ),
    Case::core(
        "authz.left.creator_removes",
        "the creator may remove a member",
        left_creator_removes,
    ),
    Case::core(
        "authz.left.forbidden",
        "anyone but the creator removing someone else answers 403 forbidden",
        left_forbidden,
    ),
    Case::core(
        "authz.left.creator_left",
        "a creator who left is a non-member: removing a member answers 403 forbidden",
        left_creator_left,
    ),
    Case::core(
        "authz.join.removed",
        "a user the creator removed joining again by the id answers 403 forbidden, until a member adds them",
        join_removed,
    ),
    Case::core(
        "authz.left.conflict",
        "leaving (or removing) a non-member answers 409 conflict",
        left_conflict,
    ),
    Case::core(
        "authz.group.not_found",
        "join or leave of an unknown group answers 404 not_found",
        group_not_found,
    ),
    Case::parley(
        "authz.group.unknown_user",
        "join or leave naming an unknown user answers 400 bad_request",
        unknown_user,
    ),
    Case::core(
        "groups.owner_transfer",
        "when the owner leaves, the member in the group longest owns it: 74 to the remaining members, and only they may remove",
        owner_transfer,
    ),
    Case::core(
        "groups.rename",
        "any member renames with PUT /groups/{id}: 200 view, 74 to every member; a non-member 403, an unknown group 404",
        rename,
    ),
    Case::parley(
        "authz.body.caller",
        "a join or leave body that is absent, empty or `{}` means the caller",
        body_caller,
    ),
];

fn join_self(ctx: &mut Ctx) -> Outcome {
    let owner = ctx.user()?;
    let joiner = ctx.user()?;
    let group = ctx.group(&owner, &[])?;
    let mut owner_ws = ctx.device(&owner, "owner")?;
    let mut joiner_ws = ctx.device(&joiner, "joiner")?;
    let response = ctx.membership("join", &joiner, &group, None)?;
    let members = [owner.id.as_str(), joiner.id.as_str()];
    let name = membership_answer(&response, "join by group id", "join", &group, &members)?;
    let joined = json!({"group_id": group, "user_id": joiner.id});
    let mut got = [joiner_ws.next_event()?, joiner_ws.next_event()?];
    got.sort_by_key(|e| e["type"].as_u64());
    expect_event(&got[0], 70, &json!({}))?;
    expect_group(
        &got[0]["body"],
        &group,
        &name,
        &members,
        "the joiner's event 70",
    )?;
    expect_event(&got[1], 72, &joined)?;
    expect_event(&owner_ws.expect(72)?, 72, &joined)?;
    owner_ws.expect_quiet("existing members get only 72 on a join")?;
    Ok(joiner_ws.expect_quiet("the joiner gets 70 and 72 once each")?)
}

fn join_by_member(ctx: &mut Ctx) -> Outcome {
    let owner = ctx.user()?;
    let member = ctx.user()?;
    let added = ctx.user()?;
    let group = ctx.group(&owner, &[&member])?;
    let mut added_ws = ctx.device(&added, "added")?;
    let response = ctx.membership("join", &member, &group, Some(&added))?;
    membership_answer(
        &response,
        "a member adds another user",
        "join",
        &group,
        &[&member.id, &owner.id, &added.id],
    )?;
    let got = [added_ws.next_event()?, added_ws.next_event()?];
    let mut kinds: Vec<u64> = got.iter().filter_map(|e| e["type"].as_u64()).collect();
    kinds.sort_unstable();
    ensure_eq("events of the added user", kinds, vec![70, 72])
}

fn join_forbidden(ctx: &mut Ctx) -> Outcome {
    let owner = ctx.user()?;
    let outsider = ctx.user()?;
    let target = ctx.user()?;
    let group = ctx.group(&owner, &[])?;
    let mut owner_ws = ctx.device(&owner, "owner")?;
    let mut target_ws = ctx.device(&target, "target")?;
    let response = ctx.membership("join", &outsider, &group, Some(&target))?;
    expect_error(
        &response,
        403,
        "forbidden",
        "a non-member adds someone else",
    )?;
    owner_ws.expect_quiet("a refused join changes nothing")?;
    target_ws.expect_quiet("a refused join changes nothing")?;
    // The target was not added: joining by themselves still works.
    let response = ctx.membership("join", &target, &group, None)?;
    expect_status(&response, 200, "the target joins by themselves afterwards")
}

fn join_conflict(ctx: &mut Ctx) -> Outcome {
    let owner = ctx.user()?;
    let member = ctx.user()?;
    let group = ctx.group(&owner, &[&member])?;
    let response = ctx.membership("join", &member, &group, None)?;
    expect_error(&response, 409, "conflict", "a member joins again")?;
    let response = ctx.membership("join", &owner, &group, Some(&member))?;
    expect_error(&response, 409, "conflict", "a member adds a member")
}

fn left_self(ctx: &mut Ctx) -> Outcome {
    let owner = ctx.user()?;
    let member = ctx.user()?;
    let group = ctx.group(&owner, &[&member])?;
    let mut owner_ws = ctx.device(&owner, "owner")?;
    let mut member_ws = ctx.device(&member, "member")?;
    let response = ctx.membership("left", &member, &group, None)?;
    membership_answer(&response, "a member leaves", "left", &group, &[&owner.id])?;
    let left = json!({"group_id": group, "user_id": member.id});
    expect_event(&owner_ws.expect(73)?, 73, &left)?;
    expect_event(&member_ws.expect(73)?, 73, &left)?;
    // Gone means gone: the owner's next message does not reach them.
    owner_ws.send_json(&json!({"method": 40, "body": {"group_id": group, "data": "after"}}))?;
    owner_ws.expect(21)?;
    Ok(member_ws.expect_quiet("a user who left gets no more group messages")?)
}

fn left_creator_removes(ctx: &mut Ctx) -> Outcome {
    let owner = ctx.user()?;
    let member = ctx.user()?;
    let group = ctx.group(&owner, &[&member])?;
    let mut member_ws = ctx.device(&member, "member")?;
    let response = ctx.membership("left", &owner, &group, Some(&member))?;
    membership_answer(
        &response,
        "the creator removes a member",
        "left",
        &group,
        &[&owner.id],
    )?;
    expect_event(
        &member_ws.expect(73)?,
        73,
        &json!({"group_id": group, "user_id": member.id}),
    )?;
    Ok(())
}

fn left_forbidden(ctx: &mut Ctx) -> Outcome {
    let owner = ctx.user()?;
    let member = ctx.user()?;
    let other = ctx.user()?;
    let outsider = ctx.user()?;
    let group = ctx.group(&owner, &[&member, &other])?;
    let response = ctx.membership("left", &member, &group, Some(&other))?;
    expect_error(
        &response,
        403,
        "forbidden",
        "a member (not the creator) removes another",
    )?;
    let response = ctx.membership("left", &member, &group, Some(&owner))?;
    expect_error(&response, 403, "forbidden", "a member removes the creator")?;
    let response = ctx.membership("left", &outsider, &group, Some(&member))?;
    expect_error(&response, 403, "forbidden", "a non-member removes a member")?;
    // Nobody was removed: each of them can still leave by themselves.
    for user in [&other, &member] {
        let response = ctx.membership("left", user, &group, None)?;
        expect_status(&response, 200, "leaving after a refused removal")?;
    }
    Ok(())
}

fn left_creator_left(ctx: &mut Ctx) -> Outcome {
    let owner = ctx.user()?;
    let member = ctx.user()?;
    let group = ctx.group(&owner, &[&member])?;
    let response = ctx.membership("left", &owner, &group, None)?;
    expect_status(&response, 200, "the creator leaves")?;
    let mut member_ws = ctx.device(&member, "member")?;
    let response = ctx.membership("left", &owner, &group, Some(&member))?;
    expect_error(
        &response,
        403,
        "forbidden",
        "the creator who left removes a member",
    )?;
    Ok(member_ws.expect_quiet("a refused removal changes nothing")?)
}

fn join_removed(ctx: &mut Ctx) -> Outcome {
    let owner = ctx.user()?;
    let member = ctx.user()?;
    let removed = ctx.user()?;
    let group = ctx.group(&owner, &[&member, &removed])?;
    let response = ctx.membership("left", &owner, &group, Some(&removed))?;
    expect_status(&response, 200, "the creator removes a member")?;
    let mut owner_ws = ctx.device(&owner, "owner")?;
    let response = ctx.membership("join", &removed, &group, None)?;
    expect_error(
        &response,
        403,
        "forbidden",
        "the removed user joins again by the id",
    )?;
    owner_ws.expect_quiet("a refused join changes nothing")?;
    let response = ctx.membership("join", &member, &group, Some(&removed))?;
    membership_answer(
        &response,
        "a member adds the removed user back",
        "join",
        &group,
        &[&member.id, &owner.id, &removed.id],
    )?;
    Ok(())
}

fn left_conflict(ctx: &mut Ctx) -> Outcome {
    let owner = ctx.user()?;
    let outsider = ctx.user()?;
    let group = ctx.group(&owner, &[])?;
    let response = ctx.membership("left", &outsider, &group, None)?;
    expect_error(&response, 409, "conflict", "a non-member leaves")?;
    let response = ctx.membership("left", &owner, &group, Some(&outsider))?;
    expect_error(
        &response,
        409,
        "conflict",
        "the creator removes a non-member",
    )
}

fn group_not_found(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let nowhere = uuid::Uuid::new_v4().to_string();
    for action in ["join", "left"] {
        let response = ctx.membership(action, &user, &nowhere, None)?;
        expect_error(
            &response,
            404,
            "not_found",
            &format!("{action} of an unknown group"),
        )?;
    }
    Ok(())
}

fn unknown_user(ctx: &mut Ctx) -> Outcome {
    let owner = ctx.user()?;
    let group = ctx.group(&owner, &[])?;
    let nobody = uuid::Uuid::new_v4().to_string();
    for action in ["join", "left"] {
        let response = ctx.call(
            "PUT",
            &format!("/groups/{group}/{action}"),
            Some(&owner.token),
            Some(&json!({"user_id": nobody})),
        )?;
        expect_error(
            &response,
            400,
            "bad_request",
            &format!("{action} naming an unknown user"),
        )?;
    }
    Ok(())
}

fn body_caller(ctx: &mut Ctx) -> Outcome {
    let owner = ctx.user()?;
    let group = ctx.group(&owner, &[])?;
    let path = |action: &str| format!("/groups/{group}/{action}");
    let (first, second) = (ctx.user()?, ctx.user()?);
    // No body at all, then `{}`: each joins the caller, and `{}` takes them out again.
    let bare = ctx.http.send(
        "PUT",
        &path("join"),
        &[("authorization", format!("Bearer {}", first.token))],
        b"",
    )?;
    expect_status(&bare, 200, "a join without a body")?;
    let empty = ctx.call("PUT", &path("join"), Some(&second.token), Some(&json!({})))?;
    let name = membership_answer(
        &empty,
        "a join with `{}`",
        "join",
        &group,
        &[&owner.id, &first.id, &second.id],
    )?;
    let left = ctx.call("PUT", &path("left"), Some(&first.token), Some(&json!({})))?;
    expect_status(&left, 200, "a leave with `{}`")?;
    expect_group(
        &left.json(),
        &group,
        &name,
        &[&owner.id, &second.id],
        "left answer",
    )?;
    Ok(())
}

fn owner_transfer(ctx: &mut Ctx) -> Outcome {
    let owner = ctx.user()?;
    let first = ctx.user()?;
    let second = ctx.user()?;
    // They join one after the other, so `first` has been in the group longest.
    let group = ctx.group(&owner, &[])?;
    for user in [&first, &second] {
        let response = ctx.membership("join", user, &group, None)?;
        expect_status(&response, 200, "join by the group id")?;
    }
    let mut owner_ws = ctx.device(&owner, "owner")?;
    let mut first_ws = ctx.device(&first, "first")?;
    let mut second_ws = ctx.device(&second, "second")?;
    let response = ctx.membership("left", &owner, &group, None)?;
    let name = membership_answer(
        &response,
        "the owner leaves",
        "left",
        &group,
        &[&first.id, &second.id],
    )?;
    ensure_eq(
        "the left answer's `owner`",
        response.json()["owner"].as_str(),
        Some(first.id.as_str()),
    )?;
    let left = json!({"group_id": group, "user_id": owner.id});
    let updated = json!({"group_id": group, "name": name, "owner": first.id});
    for ws in [&mut first_ws, &mut second_ws] {
        expect_event(&ws.expect(73)?, 73, &left)?;
        expect_event(&ws.expect(74)?, 74, &updated)?;
    }
    expect_event(&owner_ws.expect(73)?, 73, &left)?;
    owner_ws.expect_quiet("the owner who left gets its 73, not the 74")?;
    let response = ctx.membership("left", &owner, &group, Some(&second))?;
    expect_error(
        &response,
        403,
        "forbidden",
        "the owner who left removes a member",
    )?;
    let response = ctx.membership("left", &second, &group, Some(&first))?;
    expect_error(
        &response,
        403,
        "forbidden",
        "a member removes the new owner",
    )?;
    let response = ctx.membership("left", &first, &group, Some(&second))?;
    membership_answer(
        &response,
        "the new owner removes a member",
        "left",
        &group,
        &[&first.id],
    )?;
    let removed = json!({"group_id": group, "user_id": second.id});
    expect_event(&first_ws.expect(73)?, 73, &removed)?;
    expect_event(&second_ws.expect(73)?, 73, &removed)?;
    first_ws.expect_quiet("nothing more after a removal")?;
    Ok(second_ws.expect_quiet("nothing more after a removal")?)
}

fn rename(ctx: &mut Ctx) -> Outcome {
    let owner = ctx.user()?;
    let member = ctx.user()?;
    let outsider = ctx.user()?;
    let group = ctx.group(&owner, &[&member])?;
    let mut owner_ws = ctx.device(&owner, "owner")?;
    let mut member_ws = ctx.device(&member, "member")?;
    let name = ctx.unique("renamed");
    let path = format!("/groups/{group}");
    let response = ctx.call(
        "PUT",
        &path,
        Some(&member.token),
        Some(&json!({"name": name})),
    )?;
    expect_status(&response, 200, "a member renames")?;
    let view = response.json();
    expect_group(
        &view,
        &group,
        &name,
        &[&owner.id, &member.id],
        "rename answer",
    )?;
    ensure_eq(
        "the rename answer's `owner`",
        view["owner"].as_str(),
        Some(owner.id.as_str()),
    )?;
    let updated = json!({"group_id": group, "name": name, "owner": owner.id});
    expect_event(&owner_ws.expect(74)?, 74, &updated)?;
    expect_event(&member_ws.expect(74)?, 74, &updated)?;
    let response = ctx.call(
        "PUT",
        &path,
        Some(&outsider.token),
        Some(&json!({"name": "x"})),
    )?;
    expect_error(&response, 403, "forbidden", "a non-member renames")?;
    let nowhere = format!("/groups/{}", uuid::Uuid::new_v4());
    let response = ctx.call(
        "PUT",
        &nowhere,
        Some(&member.token),
        Some(&json!({"name": "x"})),
    )?;
    expect_error(&response, 404, "not_found", "a rename of an unknown group")?;
    owner_ws.expect_quiet("a refused rename changes nothing")?;
    Ok(member_ws.expect_quiet("a refused rename changes nothing")?)
}

/// A `join` or `left` that must answer 200 (`what` names the request) with the group's view
/// listing `members`; the group's name, as the view gives it (the cases do not choose it).
fn membership_answer(
    response: &Response,
    what: &str,
    change: &str,
    group: &str,
    members: &[&str],
) -> Result<String, Stop> {
    expect_status(response, 200, what)?;
    let view = response.json();
    let name = view["name"].as_str().unwrap_or("").to_string();
    expect_group(&view, group, &name, members, &format!("{change} answer"))?;
    Ok(name)
}
