import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, Unique } from "typeorm";

/** A tenant. Every other table carries its id; deleting a namespace deletes everything in it. */
@Entity({ name: "namespaces" })
@Unique("uq_namespaces_name", ["name"])
export class NamespaceEntity {
  @PrimaryGeneratedColumn("uuid", { primaryKeyConstraintName: "pk_namespaces" })
  id: string;

  @Column({ type: "varchar", length: 63 })
  name: string;

  @CreateDateColumn({ name: "create_time", type: "timestamptz", precision: 3 })
  createTime: Date;
}
