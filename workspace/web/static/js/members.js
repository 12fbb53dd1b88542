// Collaborators of the open project, and the owner's invite form (email + role).

import * as api from "./api.js";
import { $, bindForm, h } from "./dom.js";

export class Members {
  constructor(projectId, { isOwner }) {
    this.projectId = projectId;
    this.isOwner = isOwner;
    this.items = [];
    this.form = $("#invite-form");
    this.form.reset();
    if (!this.form.dataset.bound) {
      // The form outlives project views: bind once, act on whichever project is open.
      this.form.dataset.bound = "1";
      bindForm(this.form, (data) => Members.active.invite(data));
    }
    Members.active = this;
    $("#invite-done").textContent = "";
    this.render();
  }

  setOwner(isOwner) {
    this.isOwner = isOwner;
    this.render();
  }

  async load() {
    const { items } = await api.projects.collaborators(this.projectId);
    this.items = items;
    this.render();
  }

  async invite(data) {
    const email = String(data.get("email") || "").trim();
    const role = String(data.get("role") || "collaborator");
    const member = await api.projects.invite(this.projectId, { email, role });
    this.form.reset();
    $("#invite-done").textContent = `${member.name || member.email || email} is now a ${member.role || role}.`;
    await this.load();
  }

  render() {
    this.form.hidden = !this.isOwner;
    $("#collaborators").replaceChildren(...this.items.map((m) => h("li", { class: "member" },
      h("span", { text: m.name || m.email }),
      h("span", { class: "muted small", text: `${m.email} · ${m.role}` }))));
  }
}
