// Export jobs of the open project: start one, follow it through JOB_UPDATE (status, attempts, progress), and
// download its archive with the bearer token (fetch → blob → a download link), since a plain link sends no token.

import * as api from "./api.js";
import { $, formatBytes, formatTime, h, newKey, notice, noticeError } from "./dom.js";

const FINISHED = new Set(["succeeded", "failed"]);

/** A progress object of any reasonable shape as a 0..1 fraction (or null when it has no such number). */
export function fraction(progress) {
  if (progress == null) return null;
  if (typeof progress === "number") return progress > 1 ? progress / 100 : progress;
  if (typeof progress.percent === "number") return progress.percent / 100;
  if (typeof progress.fraction === "number") return progress.fraction;
  const done = progress.done ?? progress.current ?? progress.processed ?? progress.files_done;
  const total = progress.total ?? progress.files_total ?? progress.file_count;
  if (typeof done === "number" && typeof total === "number") return total > 0 ? done / total : 1;
  return null;
}

export class Jobs {
  constructor(projectId, { canRun }) {
    this.projectId = projectId;
    this.canRun = canRun;
    this.jobs = new Map(); // job id -> job as last known
    this.onClick = () => this.startExport();
    $("#run-export").addEventListener("click", this.onClick);
    this.render();
  }

  destroy() {
    $("#run-export").removeEventListener("click", this.onClick);
  }

  setCanRun(canRun) {
    this.canRun = canRun;
    this.render();
  }

  async load() {
    const page = await api.projects.jobs(this.projectId);
    for (const job of page.items || []) this.merge(job);
    this.render();
  }

  merge(job) {
    const id = job.job_id ?? job.id;
    const old = this.jobs.get(id) || {};
    // Events can cross REST answers: a finished job never goes back to running.
    if (FINISHED.has(old.status) && !FINISHED.has(job.status)) return old;
    const merged = { ...old, ...job, job_id: id };
    this.jobs.set(id, merged);
    return merged;
  }

  async startExport() {
    const button = $("#run-export");
    button.disabled = true;
    try {
      // One key per click: a retried request (double submit, flaky network) never starts a second export.
      const job = await api.jobs.run({ project_id: this.projectId, type: "export", payload: {} }, newKey());
      this.merge({ type: "export", created_at: new Date().toISOString(), ...job });
      this.render();
    } catch (err) {
      noticeError(err);
    } finally {
      button.disabled = !this.canRun;
    }
  }

  /** JOB_UPDATE from the room. The event has no type, result or error: those are read over REST when a job is
   * new to us or has just finished. */
  async update(event) {
    const before = this.jobs.get(event.job_id);
    const job = this.merge(event);
    this.render();
    if (!before || (FINISHED.has(job.status) && !FINISHED.has(before.status))) await this.refresh(job.job_id);
  }

  /** The full job (result, error) over REST; also after a reconnect, for updates we may have missed. */
  async refresh(id) {
    try {
      this.merge(await api.jobs.get(id));
      this.render();
    } catch (err) {
      noticeError(err);
    }
  }

  resync() {
    for (const job of this.jobs.values()) if (!FINISHED.has(job.status)) this.refresh(job.job_id);
  }

  async download(job) {
    try {
      const response = await api.jobs.artifact(job.job_id);
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const link = h("a", { href: url, download: filename(response, job, this.projectId), hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      notice(`Downloaded export #${job.job_id} (${formatBytes(blob.size)}).`, "info");
    } catch (err) {
      noticeError(err);
    }
  }

  render() {
    $("#run-export").disabled = !this.canRun;
    $("#export-note").hidden = this.canRun;
    const jobs = [...this.jobs.values()].sort((a, b) => b.job_id - a.job_id).slice(0, 5);
    $("#jobs-empty").hidden = jobs.length > 0;
    $("#jobs").replaceChildren(...jobs.map((job) => this.row(job)));
  }

  row(job) {
    const share = fraction(job.progress);
    const done = job.status === "succeeded";
    const result = job.result && typeof job.result === "object" ? job.result : null;
    return h("li", { class: "job", dataset: { jobId: job.job_id, status: job.status } },
      h("div", { class: "job-head" },
        h("span", { text: `#${job.job_id} ${job.type || "job"}` }),
        h("span", { class: `badge status-${job.status}`, "aria-label": `Job ${job.job_id} status`, text: job.status }),
        job.attempts > 1 ? h("span", { class: "muted small", text: `attempt ${job.attempts}` }) : null),
      FINISHED.has(job.status) ? null : h("progress", {
        "aria-label": `Job ${job.job_id} progress`, max: "1", value: share == null ? null : String(share) }),
      result && done ? h("div", { class: "muted small",
        text: `${plural(result.file_count, "file")} · ${formatBytes(result.bytes)}`,
        title: result.sha256 || "" }) : null,
      job.error ? h("div", { class: "error small", text: job.error }) : null,
      done && job.type === "export" ? h("button", { type: "button", class: "small",
        "aria-label": `Download export ${job.job_id}`, text: "Download", onclick: () => this.download(job) }) : null,
      job.created_at ? h("div", { class: "muted small", text: formatTime(job.created_at) }) : null);
  }
}

function filename(response, job, projectId) {
  const header = response.headers.get("Content-Disposition") || "";
  const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(header);
  return match ? decodeURIComponent(match[1]) : `project-${projectId}-export-${job.job_id}.zip`;
}

const plural = (n, word) => (n == null ? `? ${word}s` : `${n} ${word}${n === 1 ? "" : "s"}`);
