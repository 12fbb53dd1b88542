// Who is online in the open project: seeded from the join ack's presence, kept live by USER_JOIN / USER_LEAVE.

import { $, h, userColour } from "./dom.js";

/** Presence entries come as {user_id, name} or {user: {id, name}} or {id, name}: one shape for the page. */
export function person(entry) {
  const user = entry.user || entry;
  return { id: user.user_id ?? user.id, name: user.name || `User ${user.user_id ?? user.id}` };
}

export class Presence {
  constructor(me) {
    this.me = me;
    this.online = new Map();
  }

  reset(entries) {
    this.online = new Map(entries.map(person).map((p) => [p.id, p]));
    this.render();
  }

  join(user) {
    const p = person(user);
    this.online.set(p.id, p);
    this.render();
  }

  leave(user) {
    this.online.delete(person(user).id);
    this.render();
  }

  clear() {
    this.online.clear();
    this.render();
  }

  render() {
    const people = [...this.online.values()].sort((a, b) => a.name.localeCompare(b.name));
    $("#online-count").textContent = String(people.length);
    $("#online").replaceChildren(...people.map((p) => h("li", { dataset: { userId: p.id } },
      h("span", { class: "dot", "aria-hidden": "true", style: { background: userColour(p.id) } }),
      h("span", { text: p.name }),
      p.id === this.me.id ? h("span", { class: "muted", text: " (you)" }) : null)));
  }
}
