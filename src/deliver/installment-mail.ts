// An installment's email, composed once by nodemailer with slots for the reader's values
// (compose.ts) and filled per reader: the bytes a run hands to the SMTP pool as `raw`.
import type { SendMailOptions } from 'nodemailer';
import type { EmailRenderer, FilledEmail } from '../render/email.ts';
import type { StoredInstallment } from '../store/installments.ts';
import { composeAddressed, type AddressedTemplate, type MessageBuffers } from './compose.ts';
import type { OutgoingMail } from './transport.ts';

export interface InstallmentMailDeps {
  renderer: Pick<EmailRenderer, 'installment'>;
  /** Addresses a filled email to one reader with the list's headers (listMail). */
  address(filled: FilledEmail, to: string, unsubscribeUrl: string, messageId: string): OutgoingMail;
  /** The nodemailer message for an addressed email (the transport's own). */
  options(mail: OutgoingMail): SendMailOptions;
  /** Where every template writes its readers' copies: one set for the messages in flight. */
  buffers?: MessageBuffers;
}

/** nodemailer's Date header format, for a date. */
export const dateHeader = (at: Date): string => at.toUTCString().replace(/GMT/, '+0000');

export class InstallmentMail {
  /**
   * One template per installment, for its text and "next" date: a run sends one or (paced) a
   * few. A new date or text replaces the old, so a long-running `serve` keeps no past runs'.
   */
  private readonly templates = new Map<number, { version: string; template: Promise<AddressedTemplate | undefined> }>();

  constructor(private readonly deps: InstallmentMailDeps) {}

  /** The composed template, or undefined when this email has to be composed per reader. */
  template(inst: StoredInstallment, nextDate: string | null): Promise<AddressedTemplate | undefined> {
    const version = `${inst.hash}|${nextDate ?? ''}`;
    const hit = this.templates.get(inst.number);
    if (hit?.version === version) return hit.template;
    const template = this.compose(inst, nextDate);
    this.templates.set(inst.number, { version, template });
    // A failed compile is not kept: the next reader tries again.
    template.catch(() => {
      if (this.templates.get(inst.number)?.template === template) this.templates.delete(inst.number);
    });
    return template;
  }

  private async compose(inst: StoredInstallment, nextDate: string | null): Promise<AddressedTemplate | undefined> {
    const prepared = await this.deps.renderer.installment(inst, { nextDate });
    return composeAddressed(
      prepared,
      (filled, token) => this.deps.address(filled, token.to, token.unsubscribeUrl, token.messageId),
      (mail) => this.deps.options(mail),
      this.deps.buffers,
    );
  }
}
