// Confirmation, welcome and "The End" emails, composed once per kind by nodemailer with
// slots for the reader's values (compose.ts) and filled per reader: "The End" goes to
// every reader at once when a broadcast finishes.
import type { SendMailOptions } from 'nodemailer';
import type { FilledEmail, PreparedEmail } from '../render/email.ts';
import type { NoticeKind } from '../store/notices.ts';
import { composeAddressed, type AddressedTemplate } from './compose.ts';
import type { OutgoingMail } from './transport.ts';

export interface NoticeMailDeps {
  /** Addresses a filled email to one reader with the list's headers (listMail). */
  address(filled: FilledEmail, to: string, unsubscribeUrl: string, messageId: string, kind: NoticeKind): OutgoingMail;
  /** The nodemailer message for an addressed email (the transport's own). */
  options(mail: OutgoingMail): SendMailOptions;
}

export class NoticeMail {
  /**
   * One template per prepared email: the renderer prepares a kind again when what it says
   * changes (the story completed), and the old template goes with the old email.
   */
  private readonly templates = new WeakMap<PreparedEmail, Promise<AddressedTemplate | undefined>>();

  constructor(private readonly deps: NoticeMailDeps) {}

  /** The composed template, or undefined when this email has to be composed per reader. */
  template(prepared: PreparedEmail, kind: NoticeKind): Promise<AddressedTemplate | undefined> {
    let t = this.templates.get(prepared);
    if (!t) {
      t = composeAddressed(
        prepared,
        (filled, token) => this.deps.address(filled, token.to, token.unsubscribeUrl, token.messageId, kind),
        (mail) => this.deps.options(mail),
      );
      // A failed compile is not kept: the next reader tries again.
      const mine = t;
      mine.catch(() => {
        if (this.templates.get(prepared) === mine) this.templates.delete(prepared);
      });
      this.templates.set(prepared, mine);
    }
    return t;
  }
}
